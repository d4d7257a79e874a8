"""What journeys ask of the handoff side: consented referrals and call-back requests.

Registered as engine effects by `setup`, so the core never imports this package."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from handoff import callbacks, referrals
from helpline.app import CONTENT, EFFECTS, ENGINE, HUB, METRICS, PRIVACY, QUEUE_LEFT, STORE
from helpline.directory import normalise_uk_callback_number
from helpline.domain import Conversation, Reply
from helpline.ports import programme_of


def setup(app: web.Application) -> None:
    async def referral(conv: Conversation, data: Mapping[str, Any]) -> list[Reply]:
        programme = str(data["programme"])
        shared = dict(data.get("shared") or {})
        reference = await referrals.create_referral(
            app[STORE], conv.id, programme, shared, hub=app[HUB]
        )
        app[METRICS].referrals.labels(programme).inc()
        return [Reply(app[CONTENT].text("referral.reference", conv.language, reference=reference))]

    async def callback(conv: Conversation, data: Mapping[str, Any]) -> list[Reply]:
        number = data.get("number")
        if number is None and data.get("this_number"):
            number = await texting_number(conv)
            if number is None and data.get("ask_again") and data.get("unusable"):
                # Not a number we can call (a number abroad): the journey asks for another
                # at `ask_again`, keeping the time they gave.
                conv.state = str(data["ask_again"])
                conv.answers["callback_window"] = str(data.get("window", ""))
                return [Reply(app[CONTENT].text(str(data["unusable"]), conv.language))]
        sealed = None
        if number is not None:
            sealed = callbacks.seal_number(
                app[PRIVACY], conv.id, normalise_uk_callback_number(str(number))
            )
        await callbacks.request_callback(
            app[STORE],
            conv.id,
            str(data.get("window", "")),
            sealed_number=sealed,
            hub=app[HUB],
        )
        return []

    async def withdraw_callbacks(conv: Conversation, data: Mapping[str, Any]) -> list[Reply]:
        await callbacks.withdraw_callbacks(app[STORE], conv.contact_key, hub=app[HUB])
        return []

    async def texting_number(conv: Conversation) -> str | None:
        """The number an SMS or WhatsApp conversation comes from, if we may call it."""
        address = await app[ENGINE].address(conv)
        if address is None:
            return None
        try:
            return normalise_uk_callback_number(address.removeprefix("whatsapp:"))
        except ValueError:
            return None

    async def left(conversation_id: str, queue: str) -> None:
        programme = programme_of(queue)
        if programme is not None:
            await referrals.withdraw(app[STORE], conversation_id, programme, hub=app[HUB])

    app[EFFECTS]["referral"] = referral
    app[EFFECTS]["callback"] = callback
    app[EFFECTS]["withdraw_callbacks"] = withdraw_callbacks
    app[QUEUE_LEFT].append(left)
