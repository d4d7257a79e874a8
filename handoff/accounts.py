"""Console accounts: staff users and roles, argon2 passwords, sessions with a CSRF token,
lock-out after repeated failures, an optional TOTP second factor, and the audit log."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import case, delete, or_, select, update

from handoff.models import AuditRow, SessionRow, UserRow
from helpline.domain import utcnow
from helpline.errors import Forbidden, HelplineError, NotFound
from helpline.ports import Hub
from helpline.storage import SqlStore

ROLES = ("adviser", "supervisor", "programme", "admin")
HELPLINE_ROLES = ("adviser", "supervisor", "admin")
SUPERVISING = ("supervisor", "admin")
TOTP_ROLES = ("supervisor", "admin")

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
SESSION_IDLE = timedelta(minutes=60)
SESSION_MAX = timedelta(hours=12)
MIN_PASSWORD = 12
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,39}$")
_PROGRAMME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# "A console session has ended", on every instance: each live console checks its own
# session at once. The event names no session: it carries nothing to leak.
SESSIONS_TOPIC = "console-sessions"

_hasher = PasswordHasher()
# Verified when the name is unknown, so that a wrong name costs as long as a wrong password:
# made by the hasher in use on the first such login (not at import: every start, and every
# run.py command, would pay for a hash most never need).
_DUMMY_HASHES: dict[PasswordHasher, str] = {}


class AccountError(HelplineError):
    """A user could not be added or changed; the message says which rule was broken."""


class LoginRefused(HelplineError):
    """A login failed. `reason` is "invalid", "locked" or "code" (a TOTP code is needed);
    `locked_now`: this failure is the one that locked the account (once per lock)."""

    def __init__(self, reason: str, *, locked_now: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.locked_now = locked_now


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: str
    programme: str | None = None
    totp: bool = False
    disabled: bool = False
    capacity: int | None = None  # conversations at once; None: the service's default

    @property
    def helpline(self) -> bool:
        return self.role in HELPLINE_ROLES

    @property
    def supervises(self) -> bool:
        return self.role in SUPERVISING

    @property
    def programme_queue(self) -> str | None:
        return f"programme:{self.programme}" if self.role == "programme" else None

    def sees_queue(self, queue: str) -> bool:
        """Programme staff see only their own programme's queue; helpline staff see all."""
        if self.role == "programme":
            return queue == self.programme_queue
        return True

    def may_claim_from(self, queue: str) -> bool:
        if not self.sees_queue(queue):
            return False
        if queue.startswith("adviser:") and not self.supervises:
            return queue == f"adviser:{self.name}"
        return True

    def claim_queues(self) -> tuple[str, ...]:
        """Queues `claim next` takes from, in the order of the console's lists."""
        if self.role == "programme":
            return (f"programme:{self.programme}",)
        return ("helpline", "family", f"adviser:{self.name}")


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _user(row: UserRow) -> User:
    return User(
        row.id,
        row.name,
        row.role,
        row.programme,
        bool(row.totp_secret),
        row.disabled,
        row.capacity,
    )


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- passwords (argon2 is deliberately slow: always in a thread) -------------------------


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _dummy_hash() -> str:
    if _hasher not in _DUMMY_HASHES:
        _DUMMY_HASHES[_hasher] = await hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASHES[_hasher]


async def _verify(stored: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


# -- user commands (run.py user add / list / disable) ------------------------------------


MAX_CAPACITY = 20


def _check_capacity(capacity: int | None) -> None:
    if capacity is not None and not 1 <= capacity <= MAX_CAPACITY:
        raise AccountError(f"capacity is 1 to {MAX_CAPACITY} conversations at once")


async def set_capacity(store: SqlStore, name: str, capacity: int | None) -> None:
    """How many conversations an adviser holds at once (None: the service's default)."""
    _check_capacity(capacity)
    async with store.session() as session, session.begin():
        row = await session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            raise NotFound(f"no user called {name}")
        row.capacity = capacity


async def add_user(
    store: SqlStore,
    name: str,
    role: str,
    password: str,
    programme: str | None = None,
    capacity: int | None = None,
    programmes: Collection[str] | None = None,
) -> User:
    """A new account. `programmes`, when given, are the programme ids in the directory: a
    programme account for any other would see nothing."""
    if not _NAME.match(name):
        raise AccountError("a name is 2-40 letters, digits, dots, dashes or underscores")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if (role == "programme") != bool(programme):
        raise AccountError("programme staff need --programme, and only they have one")
    if programme and not _PROGRAMME.match(programme):
        raise AccountError("a programme id is lower-case letters, digits, dashes or underscores")
    if programme and programmes is not None and programme not in programmes:
        raise AccountError(
            f"there is no programme {programme!r} in the directory; the programmes are: "
            f"{', '.join(sorted(programmes)) or 'none'}"
        )
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    _check_capacity(capacity)
    hashed = await hash_password(password)
    async with store.session() as session, session.begin():
        if await session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
            raise AccountError(f"there is already a user called {name}")
        row = UserRow(
            name=name,
            role=role,
            programme=programme,
            password_hash=hashed,
            totp_secret=None,
            disabled=False,
            failed_logins=0,
            locked_until=None,
            created_at=utcnow(),
            capacity=capacity,
        )
        session.add(row)
        await session.flush()
        return _user(row)


async def list_users(store: SqlStore) -> list[User]:
    async with store.session() as session:
        rows = await session.scalars(select(UserRow).order_by(UserRow.name))
        return [_user(r) for r in rows]


async def role_of(store: SqlStore, name: str) -> str | None:
    """The role of the account with this name (None if there is none)."""
    async with store.session() as session:
        return await session.scalar(select(UserRow.role).where(UserRow.name == name))


async def _sessions_ended(hub: Hub | None) -> None:
    # Cookies are refused from the moment the rows are gone; live consoles check their own
    # session when told, rather than at their next check a minute later. A command run
    # without Redis cannot reach the service's process: its consoles close within a minute.
    if hub is not None:
        await hub.publish(SESSIONS_TOPIC, {"type": "ended"})


async def disable_user(store: SqlStore, name: str, *, hub: Hub | None = None) -> None:
    """Disable a user and end every session they have, at once."""
    async with store.session() as session, session.begin():
        row = await session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            raise NotFound(f"no user called {name}")
        row.disabled = True
        await session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
    await _sessions_ended(hub)


async def set_password(
    store: SqlStore, name: str, password: str, *, hub: Hub | None = None
) -> None:
    """A new password (a reset, perhaps after a leak): every session opened with the old
    one ends, so that a stolen cookie stops working too."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    hashed = await hash_password(password)
    async with store.session() as session, session.begin():
        user_id = await session.scalar(
            update(UserRow)
            .where(UserRow.name == name)
            .values(password_hash=hashed, failed_logins=0, locked_until=None)
            .returning(UserRow.id)
        )
        if user_id is None:
            raise NotFound(f"no user called {name}")
        await session.execute(delete(SessionRow).where(SessionRow.user_id == user_id))
    await _sessions_ended(hub)


async def disabled_among(store: SqlStore, names: set[str]) -> set[str]:
    """Which of these staff names belong to disabled accounts."""
    async with store.session() as session:
        rows = await session.scalars(
            select(UserRow.name).where(UserRow.name.in_(names), UserRow.disabled.is_(True))
        )
        return set(rows)


async def enable_totp(store: SqlStore, name: str, *, hub: Hub | None = None) -> str:
    """Give a supervisor or admin a TOTP secret; returns the otpauth:// URI to enrol an app.
    From then on their login needs a code: sessions opened without one (or with a code from
    a secret now replaced) end."""
    secret = pyotp.random_base32()
    async with store.session() as session, session.begin():
        row = await session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            raise NotFound(f"no user called {name}")
        if row.role not in TOTP_ROLES:
            raise AccountError("a second factor is for supervisors and admins")
        row.totp_secret = secret
        row.totp_last_step = None
        await session.execute(delete(SessionRow).where(SessionRow.user_id == row.id))
    await _sessions_ended(hub)
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="helpline console")


# -- logging in --------------------------------------------------------------------------


async def authenticate(
    store: SqlStore, name: str, password: str, code: str | None = None, *, now: datetime
) -> User:
    """Check a login. Five failures in a row lock the account for 15 minutes, during which
    even the right password is refused. Raises LoginRefused."""
    async with store.session() as session:
        row = await session.scalar(select(UserRow).where(UserRow.name == name))
    if row is None or row.disabled:
        await _verify(await _dummy_hash(), password)
        raise LoginRefused("invalid")
    locked = _aware(row.locked_until)
    if locked is not None and locked > now:
        raise LoginRefused("locked")
    ok = await _verify(row.password_hash, password)
    step: int | None = None
    if ok and row.totp_secret:
        if not code:
            raise LoginRefused("code")
        step = _code_step(row.totp_secret, code, now)
        last = row.totp_last_step
        ok = step is not None and (last is None or step > last)
    if not ok:
        raise await _failed(store, row.id, now)
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    if _hasher.check_needs_rehash(row.password_hash):
        values["password_hash"] = await hash_password(password)
    # Parallel failures may have locked the account during the slow check above: the lock
    # is looked at again in the same statement that clears the count. A code's step is
    # taken in that statement too, so two logins racing with one code cannot both pass.
    where = [UserRow.id == row.id, or_(UserRow.locked_until.is_(None), UserRow.locked_until <= now)]
    if step is not None:
        values["totp_last_step"] = step
        where.append(or_(UserRow.totp_last_step.is_(None), UserRow.totp_last_step < step))
    async with store.session() as session, session.begin():
        result = await session.execute(update(UserRow).where(*where).values(**values))
    if not result.rowcount:  # type: ignore[attr-defined]
        if step is None:
            raise LoginRefused("locked")
        raise await _failed(store, row.id, now)
    return _user(row)


def _code_step(secret: str, code: str, now: datetime) -> int | None:
    """The time-step a code belongs to (this one, or one either side for a clock a little
    out), or None if it belongs to none of them."""
    totp = pyotp.TOTP(secret)
    code = code.strip()
    for offset in (0, -1, 1):
        step = totp.timecode(now) + offset
        if secrets.compare_digest(code.encode(), totp.generate_otp(step).encode()):
            return step
    return None


async def _failed(store: SqlStore, user_id: int, now: datetime) -> LoginRefused:
    """Count a failure in one statement, so that parallel guesses cannot overwrite each
    other's count; the one that reaches the limit locks the account (and only that one is
    `locked_now`: the count starts again at 0 with the lock, so any later failure sees 1+)."""
    reached = UserRow.failed_logins + 1 >= MAX_FAILURES
    async with store.session() as session, session.begin():
        counted = (
            await session.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(
                    failed_logins=case((reached, 0), else_=UserRow.failed_logins + 1),
                    locked_until=case((reached, now + LOCK_FOR), else_=UserRow.locked_until),
                )
                .returning(UserRow.locked_until, UserRow.failed_logins)
            )
        ).one()
    locked = _aware(counted[0])
    if locked is None or locked <= now:
        return LoginRefused("invalid")
    return LoginRefused("locked", locked_now=counted[1] == 0)


# -- sessions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    user: User
    csrf: str
    token_id: str


async def open_session(store: SqlStore, user: User, *, now: datetime) -> tuple[str, str]:
    """A new session: returns the cookie token (stored only as a hash) and its CSRF token."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    async with store.session() as session, session.begin():
        session.add(
            SessionRow(
                id=_token_id(token),
                user_id=user.id,
                csrf=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=now + SESSION_MAX,
            )
        )
    return token, csrf


async def session_for(
    store: SqlStore, token: str, *, now: datetime, touch: bool = True
) -> ConsoleSession | None:
    """The live session for a cookie token, or None (unknown, idle too long, expired, or
    the user disabled). Touching keeps an active console logged in."""
    token_id = _token_id(token)
    async with store.session() as session, session.begin():
        found = (
            await session.execute(
                select(SessionRow, UserRow)
                .join(UserRow, UserRow.id == SessionRow.user_id)
                .where(SessionRow.id == token_id)
            )
        ).first()
        if found is None:
            return None
        srow, urow = found
        seen = _aware(srow.last_seen_at) or now
        expires = _aware(srow.expires_at) or now
        if urow.disabled or expires <= now or now - seen > SESSION_IDLE:
            await session.delete(srow)
            return None
        # One write a minute at most: every API call passes through here.
        if touch and now - seen > timedelta(minutes=1):
            srow.last_seen_at = now
        return ConsoleSession(_user(urow), srow.csrf, token_id)


async def close_session(store: SqlStore, token: str) -> None:
    async with store.session() as session, session.begin():
        await session.execute(delete(SessionRow).where(SessionRow.id == _token_id(token)))


async def prune_sessions(store: SqlStore, *, now: datetime) -> int:
    """Delete sessions that have ended (idle too long, or past their 12 hours) and whose
    cookie never came back to end them: staff login and last-seen times are kept no longer
    than the session lasts."""
    ended = or_(SessionRow.expires_at <= now, SessionRow.last_seen_at < now - SESSION_IDLE)
    async with store.session() as session, session.begin():
        result = await session.execute(delete(SessionRow).where(ended))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def online_staff(store: SqlStore, *, now: datetime, within: timedelta) -> list[User]:
    """Staff with a session active in the last `within` (the supervisor's view)."""
    async with store.session() as session:
        rows = await session.scalars(
            select(UserRow)
            .join(SessionRow, SessionRow.user_id == UserRow.id)
            .where(SessionRow.last_seen_at >= now - within, ~UserRow.disabled)
            .distinct()
            .order_by(UserRow.name)
        )
        return [_user(r) for r in rows]


def require(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise Forbidden("your role cannot do this")


# -- the audit log -----------------------------------------------------------------------


async def audit(
    store: SqlStore,
    actor: str,
    action: str,
    conversation_id: str | None = None,
    **detail: Any,
) -> None:
    """Record who viewed or did what. Never pass message text or contact details here."""
    async with store.session() as session, session.begin():
        session.add(
            AuditRow(
                at=utcnow(),
                actor=actor,
                action=action,
                conversation_id=conversation_id,
                detail=detail,
            )
        )


async def prune_audit(store: SqlStore, before: datetime) -> int:
    """Delete audit entries older than `before` (the audit log's own retention)."""
    async with store.session() as session, session.begin():
        result = await session.execute(delete(AuditRow).where(AuditRow.at < before))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def audit_entries(
    store: SqlStore,
    *,
    conversation_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    before: int | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """The newest `limit` entries, newest first, that match the filters given; with
    `before` (an entry's id), those older than it: the next page, so nothing is out of reach
    however many entries came after it."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if conversation_id is not None:
        query = query.where(AuditRow.conversation_id == conversation_id)
    if action is not None:
        query = query.where(AuditRow.action == action)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    if before is not None:
        query = query.where(AuditRow.id < before)
    async with store.session() as session:
        rows = await session.scalars(query)
        return [
            {
                "id": r.id,
                "at": (_aware(r.at) or r.at).isoformat(),
                "actor": r.actor,
                "action": r.action,
                "conversation": r.conversation_id,
                "detail": r.detail or {},
            }
            for r in rows
        ]
