"""What journeys ask of the handoff side: consented referrals and call-back requests.

Registered as engine effects by `setup`, so the core never imports this package."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from handoff import callbacks, referrals
from helpline.app import CONTENT, EFFECTS, HUB, METRICS, STORE
from helpline.domain import Conversation, Reply


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
        await callbacks.request_callback(
            app[STORE],
            conv.id,
            str(data.get("window", "")),
            hub=app[HUB],
        )
        return []

    app[EFFECTS]["referral"] = referral
    app[EFFECTS]["callback"] = callback
