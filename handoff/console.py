"""The adviser console: the page, logging in and out, and the JSON API under /console/api.

Every API call is authenticated by the session cookie, checked against the caller's role and
(for programme staff) their programme, and every state-changing call needs the session's
CSRF token in the X-CSRF-Token header. The live websocket is in handoff/live.py."""

from __future__ import annotations

import hmac
import logging
import re
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from aiohttp import web
from sqlalchemy import select

from handoff import accounts, callbacks, live, pages, referrals, safeguarding
from handoff.accounts import (
    HELPLINE_ROLES,
    ROLES,
    SUPERVISING,
    ConsoleSession,
    LoginRefused,
    User,
)
from handoff.views import (
    conversation_view,
    held_by_another,
    queue_snapshot,
    supervisor_view,
    visible,
)
from helpline.app import (
    BEFORE_PURGE,
    CHORES,
    CLOCK,
    CONTENT,
    ENGINE,
    HUB,
    PRIVACY,
    ROUTING,
    SETTINGS,
    STORE,
    assets,
    same_origin,
)
from helpline.domain import Owner, json_object, storable
from helpline.errors import AtCapacity, Forbidden, HelplineError, JustWritten, NotFound, QueueError
from helpline.ports import adviser_of, programme_of
from helpline.routing import OUTCOMES
from helpline.storage.models import HandoffRow

log = logging.getLogger(__name__)

STATIC = pages.STATIC
COOKIE = "helpline_console"
CSRF_HEADER = "X-CSRF-Token"
MAX_TEXT = 2000
AUDIT_PAGE = 200
AUDIT_PAGE_MAX = 500
_QUEUE = re.compile(
    r"^(helpline|family|programme:[a-z0-9][a-z0-9_-]{0,63}|adviser:[A-Za-z0-9._-]{2,40})$"
)

# A conversation id as the store makes them (uuid4().hex). Anything else cannot name one,
# and may hold what a database refuses (PostgreSQL errors on a NUL in text).
_CONVERSATION = re.compile(r"[0-9a-f]{32}")

Handler = Callable[[web.Request, User], Awaitable[web.StreamResponse]]


class LoginThrottle:
    """At most `limit` login attempts per address in `window` seconds, in this process.
    (The per-account lock-out, in the database, holds across instances.)"""

    def __init__(
        self,
        limit: int = 20,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        most: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.most = most  # addresses remembered at most
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._swept = clock()

    def remembered(self) -> int:
        """How many addresses are remembered."""
        return len(self._seen)

    def allow(self, address: str) -> bool:
        now = self._clock()
        if now - self._swept > self.window:
            # Bounded memory: forget every address with no attempt in the window. Once a
            # window, so a spray of addresses costs one pass per window, not one per login.
            self._seen = {a: s for a, s in self._seen.items() if s and now - s[-1] <= self.window}
            self._swept = now
        if address not in self._seen and len(self._seen) >= self.most:
            # A spray of addresses within one window: the longest-remembered are forgotten
            # (the account lock-out still holds for them).
            for old in list(islice(self._seen, len(self._seen) - self.most + 1)):
                del self._seen[old]
        seen = self._seen.setdefault(address, deque())
        while seen and now - seen[0] > self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        return True


THROTTLE = web.AppKey("console_throttle", LoginThrottle)
PAGES = web.AppKey("console_pages", dict[str, str])


# -- helpers -----------------------------------------------------------------------------


def _now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


def _error(status: int, code: str) -> web.Response:
    return web.json_response({"error": code}, status=status)


async def current_session(request: web.Request) -> ConsoleSession | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return None
    return await accounts.session_for(request.app[STORE], token, now=_now(request))


def _capacity(request: web.Request, user: User) -> int:
    """How many conversations this adviser may hold at once."""
    return user.capacity or request.app[SETTINGS].adviser_capacity


async def _room(request: web.Request, user: User) -> int:
    """This adviser's capacity, if they hold fewer than it; else AtCapacity (409
    "at_capacity"), so the console can say so, not "someone else took it" or "no one is
    waiting". The queue's own claim still checks it, against two claims at once."""
    capacity = _capacity(request, user)
    if len(await request.app[ROUTING].queue.claims(user.name)) >= capacity:
        raise AtCapacity("holding as many conversations as they may")
    return capacity


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a 400 {"error": "json"} for anything else."""
    try:
        data = json_object(await request.text())
    except (ValueError, LookupError):  # LookupError: a charset with no codec (x-bogus)
        data = None
    if data is None:
        raise web.HTTPBadRequest(text='{"error": "json"}', content_type="application/json")
    return data


def _text(data: dict[str, Any], key: str, limit: int = MAX_TEXT) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise web.HTTPBadRequest(text=f'{{"error": "{key}"}}', content_type="application/json")
    return storable(value.strip())


def api(
    roles: tuple[str, ...] = ROLES, *, write: bool = False
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Authenticate, check the role, and for writes the Origin and the CSRF token; translate
    the core's errors into HTTP answers."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def inner(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            if session is None:
                return _error(401, "login")
            if write:
                given = request.headers.get(CSRF_HEADER, "")
                if not same_origin(request) or not hmac.compare_digest(
                    given.encode(), session.csrf.encode()
                ):
                    return _error(403, "csrf")
            if session.user.role not in roles:
                return _error(403, "role")
            try:
                return await handler(request, session.user)
            except Forbidden:
                return _error(403, "forbidden")
            except NotFound:
                return _error(404, "not_found")
            except AtCapacity:
                return _error(409, "at_capacity")
            except JustWritten:
                return _error(409, "just_written")
            except QueueError:
                return _error(409, "conflict")
            except HelplineError:
                return _error(400, "refused")

        return inner

    return wrap


def _conversation_id(request: web.Request) -> str:
    value = request.match_info["conversation"]
    if not _CONVERSATION.fullmatch(value):
        raise NotFound("no such conversation")
    return value


def _int(request: web.Request, key: str) -> int:
    try:
        value = int(request.match_info[key])
    except ValueError:
        raise NotFound("no such item") from None
    if not 1 <= value < 2**31:  # ids are 32-bit columns; a bigger one would fail the query
        raise NotFound("no such item")
    return value


async def _audit(
    request: web.Request, user: User, action: str, conversation_id: str | None, **detail: Any
) -> None:
    await accounts.audit(request.app[STORE], user.name, action, conversation_id, **detail)


# -- the page and logging in -------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    lang = "cy" if request.query.get("lang") == "cy" else "en"
    pages = request.app[PAGES]
    if lang not in pages:
        pages[lang] = _render(request.app, lang)
    return web.Response(text=pages[lang], content_type="text/html")


def _render(app: web.Application, lang: str) -> str:
    # A programme's queue named as the programme is ("programme:north" -> its name).
    directory = app[CONTENT].directory
    programmes = directory.programmes if directory is not None else ()
    labels = {
        f"queue-programme:{p.id}": (p.names.cy if lang == "cy" else p.names.en)
        for p in programmes
        if _QUEUE.fullmatch(f"programme:{p.id}")  # part of an attribute's name: plain ids only
    }
    return pages.render(app, "console", lang, labels)


def _cookie_secure(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return settings.base_url.startswith("https://")


def _me(session_user: User, csrf: str) -> dict[str, Any]:
    return {
        "name": session_user.name,
        "role": session_user.role,
        "programme": session_user.programme,
        "csrf": csrf,
        "outcomes": list(OUTCOMES),
    }


async def login(request: web.Request) -> web.Response:
    if not same_origin(request):
        return _error(403, "origin")
    address = request.remote or "unknown"
    if not request.app[THROTTLE].allow(address):
        return _error(429, "throttled")
    data = await json_body(request)
    name, password, code = data.get("username"), data.get("password"), data.get("code")
    if not isinstance(name, str) or not isinstance(password, str) or len(password) > 1000:
        return _error(400, "invalid")
    if len(name) > 200 or storable(name) != name:
        return _error(400, "invalid")
    store = request.app[STORE]
    now = _now(request)
    try:
        user = await accounts.authenticate(
            store, name.strip(), password, code if isinstance(code, str) else None, now=now
        )
    except LoginRefused as refused:
        if refused.reason == "locked":
            if refused.locked_now:
                # Only a real account can be locked, so the name is safe to record. Once
                # per lock, not per attempt refused: anyone, logged in or not, can try, and
                # must not be able to fill the audit log.
                await accounts.audit(store, name.strip(), "login_locked")
            return _error(429, "locked")
        return _error(401, refused.reason)
    token, csrf = await accounts.open_session(store, user, now=now)
    await accounts.audit(store, user.name, "login")
    response = web.json_response(_me(user, csrf))
    response.set_cookie(
        COOKIE,
        token,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=_cookie_secure(request),
        max_age=int(accounts.SESSION_MAX.total_seconds()),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    session = await current_session(request)
    if session is not None:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), session.csrf.encode()):
            return _error(403, "csrf")
        await accounts.close_session(request.app[STORE], request.cookies[COOKIE])
        await accounts.audit(request.app[STORE], session.user.name, "logout")
        # Its live consoles, on whichever instance, close now rather than at their next check.
        await request.app[HUB].publish(accounts.SESSIONS_TOPIC, {"type": "ended"})
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/console")
    return response


async def me(request: web.Request) -> web.Response:
    session = await current_session(request)
    if session is None:
        return _error(401, "login")
    return web.json_response(_me(session.user, session.csrf))


# -- the queue and conversations ---------------------------------------------------------


@api()
async def queue(request: web.Request, user: User) -> web.Response:
    return web.json_response(await queue_snapshot(request.app, user, now=_now(request)))


@api()
async def conversation(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    view = await conversation_view(request.app, user, conv_id)
    await _audit(request, user, "view", conv_id)
    return web.json_response(view)


@api(SUPERVISING, write=True)
async def join(request: web.Request, user: User) -> web.Response:
    """A supervisor joins any conversation read-only: they read it and watch it live."""
    conv_id = _conversation_id(request)
    view = await conversation_view(request.app, user, conv_id)
    await _audit(request, user, "join", conv_id)
    return web.json_response(view)


@api(write=True)
async def claim(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    try:
        _, current = await visible(request.app, user, conv_id)
    except Forbidden:
        # Another adviser holds it: they won the race for it (the same answer whichever
        # instance saw the other's claim first).
        raise QueueError("another adviser has this conversation") from None
    if not user.may_claim_from(current):
        raise NotFound("no such conversation")
    await request.app[ROUTING].claim(
        conv_id, user.name, await _room(request, user), programme=user.role == "programme"
    )
    await _audit(request, user, "claim", conv_id)
    return web.json_response(await conversation_view(request.app, user, conv_id))


@api(write=True)
async def claim_next(request: web.Request, user: User) -> web.Response:
    if user.programme is not None and user.role == "programme":
        # Nothing without the person's standing consent is theirs to claim: back to the
        # helpline's queue first (as the chore would, within a minute).
        await referrals.hand_back_unconsented(request.app, user.programme)
    conv = await request.app[ROUTING].claim_next(
        user.name,
        user.claim_queues(),
        await _room(request, user),
        programme=user.role == "programme",
    )
    if conv is None:
        return web.json_response({"conversation": None})
    await _audit(request, user, "claim", conv.id)
    return web.json_response(await conversation_view(request.app, user, conv.id))


@api(write=True)
async def say(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    text = _text(await json_body(request), "text")
    await visible(request.app, user, conv_id)
    stored = await request.app[ROUTING].say(conv_id, user.name, text)
    await _audit(request, user, "say", conv_id)
    return web.json_response({"id": stored.id})


@api(write=True)
async def note(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    text = _text(await json_body(request), "text")
    await visible(request.app, user, conv_id)
    stored = await request.app[STORE].add_note(conv_id, text, user.name)
    await request.app[HUB].publish(
        f"transcript:{conv_id}",
        {
            "type": "message",
            "id": stored.id,
            "direction": stored.direction.value,
            "author": stored.author.value,
            "author_name": stored.author_name,
            "text": stored.text,
            "options": [],
            "at": stored.created_at.isoformat(),
        },
    )
    await _audit(request, user, "note", conv_id)
    return web.json_response({"id": stored.id})


@api(write=True)
async def release(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    await visible(request.app, user, conv_id)
    # A supervisor may release a conversation another adviser holds (one who has gone home,
    # or whose account has closed): the audit and the transcript name both.
    held_by = await request.app[ROUTING].release(conv_id, user.name, anyones=user.supervises)
    await _audit(request, user, "release", conv_id, **_for(user, held_by))
    return web.json_response({"ok": True})


def _for(user: User, held_by: str) -> dict[str, str]:
    return {} if held_by == user.name else {"held_by": held_by}


@api(write=True)
async def transfer(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    data = await json_body(request)
    target = _text(data, "queue", 120)
    note_text = storable(data["note"]) if isinstance(data.get("note"), str) else ""
    if not _QUEUE.match(target):
        return _error(400, "queue")
    if user.role == "programme":
        if target not in ("helpline", user.programme_queue):
            raise Forbidden("programme staff pass conversations back to the helpline only")
    elif target not in await _destinations(request.app):
        # Not a disabled adviser, nor a programme no one staffs: the person would wait
        # where no one looks for them.
        return _error(400, "queue")
    await visible(request.app, user, conv_id)
    programme = programme_of(target)
    if (
        programme is not None
        and user.role != "programme"
        and not await referrals.consents(request.app[STORE], [conv_id], programme)
    ):
        # A programme is a third party: only the person's own consent, given in the
        # referral step of the journey where they are shown what will be shared, sends a
        # conversation there.
        return _error(409, "no_referral")
    held_by = await request.app[ROUTING].transfer(
        conv_id, user.name, target, str(note_text)[:MAX_TEXT], anyones=user.supervises
    )
    await _audit(request, user, "transfer", conv_id, queue=target, **_for(user, held_by))
    return web.json_response({"ok": True})


@api(write=True)
async def end(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    outcome = _text(await json_body(request), "outcome", 40)
    if outcome not in OUTCOMES:
        return _error(400, "outcome")
    try:
        conv, _ = await visible(request.app, user, conv_id)
    except NotFound:
        # Programme staff no longer see a conversation the person ended ("stop") while
        # they held it; its outcome is still theirs to record (below), and nothing more.
        if user.role != "programme":
            raise
        conv = await request.app[STORE].conversation(conv_id)
        if not conv.closed or conv.owner is Owner.ADVISER:
            raise
    if conv.closed and conv.owner is not Owner.ADVISER:
        # The person ended it ("stop") while this adviser held it: the outcome is still
        # theirs to record, and nothing is sent to the person.
        if not await _record_outcome(request.app, conv_id, user.name, outcome):
            if user.role == "programme":
                raise NotFound("no such conversation")
            raise Forbidden("this conversation is not yours")
    else:
        await request.app[ROUTING].end(conv_id, user.name, outcome)
    await _audit(request, user, "end", conv_id, outcome=outcome)
    return web.json_response({"ok": True})


async def _record_outcome(app: web.Application, conv_id: str, adviser: str, outcome: str) -> bool:
    """The outcome of the last hand-off, if this adviser held it when the person left it
    (routing.cancel recorded "cancelled"); whether there was one."""
    async with app[STORE].session() as session, session.begin():
        last = await session.scalar(
            select(HandoffRow)
            .where(HandoffRow.conversation_id == conv_id)
            .order_by(HandoffRow.id.desc())
            .limit(1)
        )
        if last is None or last.claimed_by != adviser or last.outcome != "cancelled":
            return False
        last.outcome = outcome
    return True


@api(write=True)
async def raise_concern(request: web.Request, user: User) -> web.Response:
    conv_id = _conversation_id(request)
    text = _text(await json_body(request), "concern", safeguarding.MAX_TEXT)
    await visible(request.app, user, conv_id)
    concern_id = await safeguarding.raise_concern(
        request.app[STORE], request.app[HUB], conv_id, user.name, text
    )
    await _audit(request, user, "safeguarding_raised", conv_id, concern=concern_id)
    return web.json_response({"id": concern_id})


@api()
async def canned(request: web.Request, user: User) -> web.Response:
    lang = "cy" if request.query.get("lang") == "cy" else "en"
    content = request.app[CONTENT]
    keys = sorted(k for k in content.messages if k.startswith("canned."))
    return web.json_response(
        [
            {"key": k, "label": content.text(f"console.{k}", lang), "text": content.text(k, lang)}
            for k in keys
        ]
    )


@api()
async def queues(request: web.Request, user: User) -> web.Response:
    """Where a conversation can be transferred to."""
    if user.role == "programme":
        return web.json_response(["helpline"])
    return web.json_response(await _destinations(request.app))


async def _destinations(app: web.Application) -> list[str]:
    """Where helpline staff may transfer a conversation: the helpline's queues, programmes
    with staff, advisers whose accounts are in use."""
    users = await accounts.list_users(app[STORE])
    programmes = sorted({u.programme for u in users if u.programme and not u.disabled})
    return (
        ["helpline", "family"]
        + [f"programme:{p}" for p in programmes]
        + [f"adviser:{u.name}" for u in users if u.helpline and not u.disabled]
    )


# -- safeguarding, call-backs, referrals, supervision ------------------------------------


@api(SUPERVISING)
async def concerns(request: web.Request, user: User) -> web.Response:
    return web.json_response(await safeguarding.concerns(request.app[STORE]))


@api(SUPERVISING, write=True)
async def sign_off(request: web.Request, user: User) -> web.Response:
    concern_id = _int(request, "concern")
    decision = _text(await json_body(request), "decision", safeguarding.MAX_TEXT)
    conv_id = await safeguarding.sign_off(
        request.app[STORE], request.app[HUB], concern_id, user.name, decision
    )
    await _audit(request, user, "safeguarding_signed_off", conv_id, concern=concern_id)
    return web.json_response({"ok": True})


@api(HELPLINE_ROLES)
async def callback_list(request: web.Request, user: User) -> web.Response:
    return web.json_response(await callbacks.callbacks(request.app[STORE]))


async def _callback_not_held_by_another(request: web.Request, user: User) -> None:
    """A call-back of a conversation another adviser holds is theirs to make (its number
    to show, its result to record); a supervisor may all the same (audited)."""
    conv_id = await callbacks.conversation_of(request.app[STORE], _int(request, "callback"))
    try:
        conv = await request.app[STORE].conversation(conv_id)
    except NotFound:
        return
    if not held_by_another(conv, user) or user.supervises:
        return
    # Programme staff make no call-backs: one booked with the helpline stays the helpline's
    # to make while they hold the conversation. Who holds it decides, not the queue it came
    # from: a helpline adviser may have claimed it from a programme's queue.
    if await accounts.role_of(request.app[STORE], str(conv.adviser)) != "programme":
        raise Forbidden("another adviser holds this conversation")


@api(HELPLINE_ROLES, write=True)
async def callback_mark(request: web.Request, user: User) -> web.Response:
    await _callback_not_held_by_another(request, user)
    status = _text(await json_body(request), "status", 20)
    try:
        conv_id = await callbacks.mark_callback(
            request.app[STORE], _int(request, "callback"), status, user.name, hub=request.app[HUB]
        )
    except callbacks.CallbackFinal:
        # Marked by someone already, or withdrawn by the person ("stop"): that stands.
        return _error(409, "callback_final")
    await _audit(request, user, "callback", conv_id, status=status)
    return web.json_response({"ok": True})


@api(HELPLINE_ROLES, write=True)
async def callback_number(request: web.Request, user: User) -> web.Response:
    """ "Show number": open the sealed number for the adviser about to call. A POST with the
    CSRF token (a link cannot reveal it), audited with who and when; never logged."""
    await _callback_not_held_by_another(request, user)
    callback_id = _int(request, "callback")
    number, conv_id = await callbacks.reveal_number(
        request.app[STORE], request.app[PRIVACY], callback_id
    )
    await _audit(request, user, "callback_number_shown", conv_id, callback=callback_id)
    return web.json_response({"number": number})


@api()
async def referral_list(request: web.Request, user: User) -> web.Response:
    scope = user.programme if user.role == "programme" else None
    return web.json_response(await referrals.referrals(request.app[STORE], scope))


@api(("programme", *SUPERVISING), write=True)
async def referral_mark(request: web.Request, user: User) -> web.Response:
    status = _text(await json_body(request), "status", 20)
    try:
        view = await referrals.set_status(
            request.app[STORE],
            _int(request, "referral"),
            status,
            user.name,
            programme_id=user.programme if user.role == "programme" else None,
            hub=request.app[HUB],
        )
    except referrals.ReferralFinal:
        # Withdrawn by the person, or declined: consent cannot be brought back from here.
        return _error(409, "referral_final")
    if view["status"] == "declined":
        # The programme has turned them down: they wait for the helpline, not for it. Its
        # staff see nothing more of it either way (views.visible); should the move fail,
        # housekeeping makes it within a minute (referrals.hand_back_unconsented).
        try:
            await referrals.hand_back(
                request.app, view["conversation_id"], view["programme"], declined=True
            )
        except Exception:  # noqa: BLE001 - the decline stands; the chore moves it
            log.warning(
                "a declined referral's conversation could not be handed back", exc_info=True
            )
    await _audit(
        request, user, "referral", view["conversation_id"], referral=view["id"], status=status
    )
    return web.json_response({"ok": True, "status": view["status"]})


@api(SUPERVISING)
async def supervision(request: web.Request, user: User) -> web.Response:
    return web.json_response(await supervisor_view(request.app, now=_now(request)))


@api(SUPERVISING)
async def audit_log(request: web.Request, user: User) -> web.Response:
    """The audit log, newest first, a page at a time: `before` (the last id of the page
    shown) for the next, `limit` (up to 500), and filters by `conversation`, `action` and
    `actor`, so that no entry is out of reach however many came after it."""
    query = request.query
    conv = query.get("conversation") or None
    if conv is not None and not _CONVERSATION.fullmatch(conv):
        return _error(400, "conversation")
    entries = await accounts.audit_entries(
        request.app[STORE],
        conversation_id=conv,
        action=_query_name(query, "action"),
        actor=_query_name(query, "actor"),
        before=_query_number(query, "before", 2**31 - 1),
        limit=_query_number(query, "limit", AUDIT_PAGE_MAX) or AUDIT_PAGE,
    )
    return web.json_response(entries)


def _bad_query(key: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f'{{"error": "{key}"}}', content_type="application/json")


def _query_number(query: Mapping[str, str], key: str, most: int) -> int | None:
    """A whole number from 1 to `most` (None if not given; 400 for anything else)."""
    value = query.get(key) or None
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
        raise _bad_query(key)
    return int(value)


def _query_name(query: Mapping[str, str], key: str) -> str | None:
    """An actor's or action's name to filter by (None if not given; 400 for what no entry
    could hold: too long, or what a database refuses)."""
    value = query.get(key) or None
    if value is not None and (len(value) > 80 or storable(value) != value):
        raise _bad_query(key)
    return value


async def release_gone(app: web.Application) -> int:
    """Send back to the queue, at their place and priority, the conversations held by an
    adviser whose account has been disabled (`run.py user disable`, from another process:
    hence a chore, not a step of disabling). The person is told their adviser had to step
    away, as for any release. Those waiting for such an adviser by name (transferred to
    them) move to the helpline's queue at their place. Returns how many."""
    store = app[STORE]
    records = await store.open_handoffs()
    holders = {r.claimed_by for r in records if r.claimed_by}
    named = {name for r in records if (name := adviser_of(r.queue)) is not None}
    if not holders and not named:
        return 0
    gone = await accounts.disabled_among(store, holders | named)
    released = 0
    for record in records:
        # Waiting for a closed account by name (transferred to them): only they could take
        # it from their own queue, so to the helpline's, at its place.
        waiting_for_gone = record.claimed_by is None and adviser_of(record.queue) in gone
        if waiting_for_gone and await _to_helpline(app, record.conversation_id):
            released += 1
    for record in records:
        if record.claimed_by not in gone:
            continue
        try:
            await app[ROUTING].release(record.conversation_id, record.claimed_by, gone=True)
        except (Forbidden, NotFound):
            continue  # ended, released or closed meanwhile
        await accounts.audit(
            store, "helpline", "release", record.conversation_id, held_by=record.claimed_by
        )
        released += 1
    return released


async def _to_helpline(app: web.Application, conversation_id: str) -> bool:
    """A conversation waiting in one adviser's own queue moves to the helpline's (kept)."""
    async with app[ENGINE].locks.hold(conversation_id):
        conv = await app[STORE].conversation(conversation_id)
        if conv.closed or not await app[ROUTING].to_helpline(conv):
            return False
        await app[STORE].save_turn(conv, [], [])
    return True


def setup(app: web.Application) -> None:
    """Register the console's routes; the composition root lists this in its plugins."""
    app[THROTTLE] = LoginThrottle()

    async def prune_audit(_cutoff: datetime) -> None:
        days = app[SETTINGS].audit_retention_days
        await accounts.prune_audit(app[STORE], app[CLOCK]() - timedelta(days=days))

    async def prune_sessions(_cutoff: datetime) -> None:
        # Sessions have their own, much shorter, lifetime than conversations.
        await accounts.prune_sessions(app[STORE], now=app[CLOCK]())

    app[BEFORE_PURGE].extend((prune_audit, prune_sessions))
    app[CHORES].append(("release conversations of closed accounts", lambda: release_gone(app)))
    app[CHORES].append(
        (
            "hand back to the helpline what no consent sends a programme",
            lambda: referrals.hand_back_unconsented(app),
        )
    )
    app[PAGES] = {}
    app[live.SOCKETS] = weakref.WeakSet()
    conv = "/console/api/conversations/{conversation}"
    app.router.add_routes(
        [
            web.get("/console", page),
            web.post("/console/login", login),
            web.post("/console/logout", logout),
            web.get("/console/ws", live.socket),
            web.get("/console/api/me", me),
            web.get("/console/api/queue", queue),
            web.get("/console/api/queues", queues),
            web.get("/console/api/canned", canned),
            web.post("/console/api/claim-next", claim_next),
            web.get(conv, conversation),
            web.post(conv + "/join", join),
            web.post(conv + "/claim", claim),
            web.post(conv + "/say", say),
            web.post(conv + "/note", note),
            web.post(conv + "/release", release),
            web.post(conv + "/transfer", transfer),
            web.post(conv + "/end", end),
            web.post(conv + "/safeguarding", raise_concern),
            web.get("/console/api/safeguarding", concerns),
            web.post("/console/api/safeguarding/{concern}/sign-off", sign_off),
            web.get("/console/api/callbacks", callback_list),
            web.post("/console/api/callbacks/{callback}", callback_mark),
            web.post("/console/api/callbacks/{callback}/number", callback_number),
            web.get("/console/api/referrals", referral_list),
            web.post("/console/api/referrals/{referral}", referral_mark),
            web.get("/console/api/supervisor", supervision),
            web.get("/console/api/audit", audit_log),
            assets("/console/static", STATIC),
        ]
    )
    app.on_shutdown.append(live.close_sockets)
