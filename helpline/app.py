"""create_app: the one place where the service is wired together.

Channels, the console and the journeys are passed in by the composition root (run.py),
so that the core never imports an adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as redis
import sqlalchemy.exc
from aiohttp import web
from alembic.util.exc import CommandError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.engine import make_url

from helpline.config import Settings
from helpline.content import Content
from helpline.domain import utcnow
from helpline.engine import EffectHandler, Engine
from helpline.errors import ConfigError
from helpline.flowkit import FlowRunner, FlowSpec
from helpline.hours import FILE as HOURS_FILE
from helpline.hours import OpeningHours
from helpline.hub import HEALTH_CHECK_SECONDS, MemoryHub, RedisHub
from helpline.locks import MemoryLocks
from helpline.metrics import Metrics, queue_kind
from helpline.ports import ERASED_TOPIC, Hours, Hub, Locks, RoutingQueue, Sender
from helpline.privacy import Privacy
from helpline.proxy import ProxyCheck
from helpline.ratelimit import MemoryLimiter, RedisLimiter
from helpline.routing import Routing
from helpline.storage import SqlStore
from helpline.storage.migrate import upgrade
from helpline.tasks import cancel_and_wait, stopped_within

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
CONTENT = web.AppKey("content", Content)
STORE = web.AppKey("store", SqlStore)
ENGINE = web.AppKey("engine", Engine)
ROUTING = web.AppKey("routing", Routing)
HUB = web.AppKey("hub", Hub)
PRIVACY = web.AppKey("privacy", Privacy)
SENDERS = web.AppKey("senders", dict[str, Sender])
EFFECTS = web.AppKey("effects", dict[str, EffectHandler])
REDIS = web.AppKey("redis", redis.Redis)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
DRAINING = web.AppKey("draining", list[bool])
METRICS = web.AppKey("metrics", Metrics)
# When each queue is open: content/hours.yaml, or whatever a plugin puts here instead (an
# admin page's overrides, say); None means always open. Read at every hand-off.
HOURS: web.AppKey[Hours | None] = web.AppKey("hours")
BEFORE_PURGE: web.AppKey[list[Callable[[datetime], Awaitable[None]]]] = web.AppKey("before_purge")
# Called when a person leaves a queue of their own accord (they cancel, say stop, take a
# call-back instead), with the conversation's id and the queue they left: a plugin withdraws
# what it made for that wait (a programme's referral).
QUEUE_LEFT: web.AppKey[list[Callable[[str, str], Awaitable[None]]]] = web.AppKey("queue_left")
# Further housekeeping steps from plugins, (name, step): each safe on several instances.
CHORES: web.AppKey[list[tuple[str, Callable[[], Awaitable[object]]]]] = web.AppKey("chores")
# The housekeeping loop and the event that tells it to stop.
HOUSEKEEPING = web.AppKey("housekeeping", tuple[asyncio.Event, asyncio.Task[None]])

REDIS_CONNECTIONS = 64  # per instance; requests beyond this wait for one to come free
REDIS_WAIT_SECONDS = 20
HUB_SOCKET_SECONDS = 5  # the hub's subscriber: connecting, subscribing, pinging

HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")

Plugin = Callable[[web.Application], None]
QueueFactory = Callable[[web.Application], RoutingQueue]
LocksFactory = Callable[[web.Application], Locks]


def create_app(
    settings: Settings,
    *,
    flows: Sequence[FlowSpec],
    plugins: Sequence[Plugin] = (),
    memory_queue: QueueFactory,
    redis_queue: QueueFactory | None = None,
    redis_locks: LocksFactory | None = None,
    screen_for: Callable[[Path], Callable[[str, str], object]],
    clock: Callable[[], datetime] = utcnow,
    content: Content | None = None,
) -> web.Application:
    """Build the aiohttp application. Content is loaded (and checked) here, so a broken
    content file stops the service before it listens; `screen_for(root)` gives the risk
    screen for the content folder in use, likewise loaded and checked when it is called."""
    app = web.Application(client_max_size=256 * 1024)
    if settings.proxies:
        # Behind a reverse proxy every connection comes from the proxy: the client's address
        # (hashed for the per-address limits, never stored) is the one it forwards. A request
        # that did not come through it, or whose forwarded headers are not the proxy's alone,
        # gets 400, except the balancer's health checks.
        forwarded = ProxyCheck([settings.proxies], white_paths=HEALTH_PATHS)
        app.middlewares.append(forwarded.middleware)
    app[SETTINGS] = settings
    app[CLOCK] = clock
    if content is None and settings.content_dir and not settings.content_dir.is_dir():
        raise ConfigError(f"HELPLINE_CONTENT_DIR: content folder not found: {settings.content_dir}")
    app[CONTENT] = content or (
        Content.load(settings.content_dir) if settings.content_dir else Content.load()
    )
    app[SENDERS] = {}
    app[EFFECTS] = {}
    app[DRAINING] = [False]
    app[METRICS] = Metrics()
    app[BEFORE_PURGE] = []
    app[QUEUE_LEFT] = []
    app[CHORES] = []
    hours_file = app[CONTENT].root / HOURS_FILE
    app[HOURS] = OpeningHours.load(app[CONTENT].root) if hours_file.exists() else None
    runner = FlowRunner(flows, app[CONTENT])
    screen = screen_for(app[CONTENT].root)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        if settings.redis_url:
            await redis_reachable(settings.redis_url)  # before anything waits on it
        store = await open_store(settings)
        app[STORE] = store
        app[PRIVACY] = Privacy(settings.secret)
        hub: MemoryHub | RedisHub
        if settings.redis_url:
            # A burst waits for a free connection instead of failing (redis-py 8's default
            # pool raises MaxConnectionsError once its connections are all in use, which lost
            # people under load: docs/performance.md).
            pool = redis.BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_SECONDS
            )
            client = redis.Redis.from_pool(pool)
            app[REDIS] = client
            # The subscriber waits on its socket between events with a timeout of its own
            # and pings a quiet subscription (RedisHub); the socket timeout bounds the rest
            # (connecting, subscribing). redis-py's own health check only sends a PING
            # before a read and swallows the PONG, so it cannot tell a dead subscription
            # from a quiet one: RedisHub checks for that itself. Named, to be found in
            # CLIENT LIST.
            sub_client = redis.Redis.from_url(
                settings.redis_url,
                socket_timeout=HUB_SOCKET_SECONDS,
                socket_connect_timeout=HUB_SOCKET_SECONDS,
                health_check_interval=int(HEALTH_CHECK_SECONDS),
                client_name=f"{settings.redis_prefix}hub",
            )
            hub = RedisHub(sub_client, settings.redis_prefix)
            await hub.start()
            queue = redis_queue(app) if redis_queue else memory_queue(app)
            locks = redis_locks(app) if redis_locks else MemoryLocks()
            limiter: MemoryLimiter | RedisLimiter = RedisLimiter(client, settings.redis_prefix)
        else:
            sub_client = None
            hub = MemoryHub()
            queue = memory_queue(app)
            locks = MemoryLocks()
            limiter = MemoryLimiter()
        app[HUB] = hub
        queue_left = app[QUEUE_LEFT]  # the plugins' hooks (set up before the app starts)
        routing = Routing(
            store=store,
            queue=queue,
            hub=hub,
            content=app[CONTENT],
            clock=clock,
            metrics=app[METRICS],
            is_open=lambda queue, at: _hours(app).is_open(queue, at),
            next_opening=lambda queue, at: _hours(app).next_opening(queue, at),
            on_left=queue_left,
        )
        engine = Engine(
            store=store,
            content=app[CONTENT],
            runner=runner,
            privacy=app[PRIVACY],
            locks=locks,
            hub=hub,
            screen=screen,  # type: ignore[arg-type]
            senders=app[SENDERS],
            handoffs=routing,
            effects=app[EFFECTS],
            clock=clock,
            metrics=app[METRICS],
            limiter=limiter,
            messages_per_minute=settings.messages_per_minute,
            alone=not settings.shared,
        )
        routing.engine = engine
        app[ROUTING] = routing
        app[ENGINE] = engine
        if not settings.redis_url:
            await routing.restore()
        else:
            # Redis may have come back empty (restarted without its data): what the database
            # says is waiting or held goes back in, checked under each conversation's lock,
            # so instances starting together (or already running) cannot undo each other.
            await routing.repair_queue()
        await engine.recover()
        stop = asyncio.Event()
        chores = asyncio.create_task(_housekeeping(app, stop), name="housekeeping")
        app[HOUSEKEEPING] = (stop, chores)
        try:
            yield
        finally:
            # Already stopped at shutdown (_stop_housekeeping), unless the start failed.
            await cancel_and_wait(chores)
            app[DRAINING][0] = True
            await engine.drain()
            await engine.stop_retries()  # after: a turn drained may have started one
            if isinstance(hub, RedisHub):
                await hub.stop()
            if sub_client is not None:
                await sub_client.aclose()
            if REDIS in app:
                await app[REDIS].aclose()
            await store.close()

    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.on_shutdown.insert(0, _start_draining)
    app.on_shutdown.insert(1, _stop_housekeeping)
    for plugin in plugins:
        plugin(app)
    # The engine is built at start-up; senders registered by plugins are shared by reference.
    return app


REDIS_CHECK_SECONDS = 5  # at start: how long Redis has to answer one PING


async def redis_reachable(url: str) -> None:
    """At start, one PING with no retries: Redis that cannot be reached stops the start with
    one line naming the setting (and the address, never the password), instead of minutes
    of retries and reconnections."""
    client = redis.Redis.from_url(
        url,
        socket_timeout=REDIS_CHECK_SECONDS,
        socket_connect_timeout=REDIS_CHECK_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        raise ConfigError(
            f"HELPLINE_REDIS_URL: Redis at {_redis_address(url)} cannot be reached "
            f"({_reason(exc, url)})"
        ) from None
    finally:
        await client.aclose()


def _redis_address(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


async def open_store(settings: Settings) -> SqlStore:
    """The database, its schema brought up to date. A database that cannot be used stops the
    start with one line naming the setting, never with the password."""
    store = SqlStore(settings.db_url)
    try:
        await upgrade(store.engine)
    except (sqlalchemy.exc.SQLAlchemyError, CommandError, OSError) as exc:
        await store.close()
        raise ConfigError(_database_problem(settings, exc)) from None
    except BaseException:
        await store.close()
        raise
    return store


def _database_problem(settings: Settings, exc: BaseException) -> str:
    url = make_url(settings.db_url)
    if settings.database_url:
        setting, where = "HELPLINE_DATABASE_URL", url.render_as_string(hide_password=True)
    else:
        setting, where = "HELPLINE_DATA_DIR", str(url.database)
    reason = _reason(exc, settings.db_url)
    if isinstance(exc, CommandError) and "Can't locate revision" in reason:
        return (
            f"{setting}: this database is newer than this code ({reason}): run the release "
            f"that last migrated it, or a newer one ({where})"
        )
    if "file is not a database" in reason:
        return f"{setting}: {where} is not an SQLite database"
    if isinstance(exc, OSError):
        return f"{setting}: the database server cannot be reached ({where}: {reason})"
    return f"{setting}: cannot use the database {where} ({reason})"


def _reason(exc: BaseException, url: str) -> str:
    """An error's first line, from the driver where there is one, without the password."""
    cause = getattr(exc, "orig", None) or exc
    text = (str(cause).splitlines() or [""])[0] or type(cause).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def log_channels(app: web.Application) -> None:
    """Once at start: which channels are on (names only)."""
    senders: dict[str, Sender] = app[SENDERS]
    log.info("channels on: %s", ", ".join(sorted(senders)))


HOUSEKEEPING_SECONDS = 60
# At shutdown, how long the chore under way may take to finish before it is cancelled:
# longer than a slow send is given.
HOUSEKEEPING_STOP_SECONDS = 20
# A message still unanswered this long after it arrived had its turn fail: try again. Long
# enough that turns still running (waiting for a lock or a turn under load) are left alone.
RETRY_UNANSWERED_AFTER = timedelta(seconds=60)


class _AlwaysOpen:
    def is_open(self, queue: str, at: datetime) -> bool:
        return True

    def next_opening(self, queue: str, at: datetime) -> datetime:
        return at


def _hours(app: web.Application) -> Hours:
    return app[HOURS] or _AlwaysOpen()


async def _housekeeping(app: web.Application, stop: asyncio.Event) -> None:
    """Every minute: answer messages whose turn failed, send messages held for quiet hours,
    queue people in danger whose hand-off the queue refused, close idle conversations, put
    right claims no adviser joined, tell anyone waiting that their queue has closed, offer a
    call-back to anyone waiting long, and apply retention.
    Each step is safe to run on several instances at once."""
    settings = app[SETTINGS]
    engine = app[ENGINE]
    idle = timedelta(minutes=settings.idle_minutes)
    steps: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
        ("answer unanswered messages", lambda: engine.retry_unanswered(RETRY_UNANSWERED_AFTER)),
        ("release held messages", engine.release_held),
        ("hand off after danger", engine.retry_handoffs),
        (
            "warn idle chats",
            lambda: engine.warn_idle(idle, timedelta(minutes=settings.idle_warning_minutes)),
        ),
        ("close idle conversations", lambda: engine.close_idle(idle)),
        ("put right claims no adviser joined", lambda: app[ROUTING].settle_claims()),
        ("put back what the queue has lost", lambda: app[ROUTING].repair_queue()),
        ("tell those waiting that their queue has closed", lambda: app[ROUTING].tell_closing()),
        (
            "offer call-backs",
            lambda: app[ROUTING].offer_waiting(timedelta(minutes=settings.wait_offer_minutes)),
        ),
        ("apply retention", lambda: purge(app)),
        *app[CHORES],
    )
    while not await stopped_within(stop, HOUSEKEEPING_SECONDS):
        # Each step on its own: one that keeps failing must not stop the others (above all,
        # retention).
        for name, step in steps:
            if stop.is_set():
                return
            try:
                await step()
            except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
                log.exception("housekeeping failed", extra={"step": name})


async def purge(app: web.Application) -> dict[str, int]:
    """Apply retention: first let plugins keep their anonymous counts (BEFORE_PURGE hooks get
    the cutoff), then delete what is older than the retention period."""
    cutoff = app[CLOCK]() - timedelta(days=app[SETTINGS].retention_days)
    for hook in app[BEFORE_PURGE]:
        await hook(cutoff)
    deleted = await app[STORE].purge(cutoff)
    if any(deleted.values()):
        await app[HUB].publish(ERASED_TOPIC, {"type": "erased"})
    return deleted


async def _dependencies_answer(app: web.Application) -> bool:
    try:
        await app[STORE].ping()
        await app[ROUTING].queue.waiting(())
        if REDIS in app:
            await app[REDIS].ping()
    except Exception:  # noqa: BLE001 - any failure means "not ready"; the reason is logged
        log.warning("a dependency did not answer", exc_info=True)
        return False
    return True


async def _healthz(request: web.Request) -> web.Response:
    """The process is alive and its database and queue answer."""
    if not await _dependencies_answer(request.app):
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok", "content_version": request.app[CONTENT].version})


async def _readyz(request: web.Request) -> web.Response:
    """Ready for new work: dependencies answer and the process is not draining."""
    if request.app[DRAINING][0]:
        return web.json_response({"status": "draining"}, status=503)
    if not await _dependencies_answer(request.app):
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    depth: dict[str, int] = {}
    for entry in await request.app[ROUTING].queue.waiting():
        depth[queue_kind(entry.queue)] = depth.get(queue_kind(entry.queue), 0) + 1
    metrics.queue_depth.clear()
    for queue, count in depth.items():
        metrics.queue_depth.labels(queue).set(count)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _start_draining(app: web.Application) -> None:
    """First thing at shutdown: /readyz turns false so a load balancer stops sending work."""
    app[DRAINING][0] = True


async def _stop_housekeeping(app: web.Application) -> None:
    """At shutdown, before any cleanup context unwinds: the channels' clients close there, and
    a chore delivering a message after that would have it marked failed or, cancelled
    mid-send, sent again at the next start. The chore under way finishes; no other starts."""
    if HOUSEKEEPING not in app:
        return
    stop, chores = app[HOUSEKEEPING]
    stop.set()
    await asyncio.wait([chores], timeout=HOUSEKEEPING_STOP_SECONDS)
    await cancel_and_wait(chores)


ASSET_TYPES = {".js": "text/javascript", ".css": "text/css"}


def assets(prefix: str, folder: Path) -> web.RouteDef:
    """The scripts and style sheets in `folder` under `prefix`, and nothing else: the page
    templates beside them (their {{placeholders}} unfilled, an error page without its quick
    exit) are never served as they are, nor a listing of the folder."""

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = folder / name
        kind = ASSET_TYPES.get(path.suffix)
        if kind is None or "/" in name or name.startswith(".") or not _plain_file(path):
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": kind})

    return web.get(prefix + "/{name}", asset)


def _plain_file(path: Path) -> bool:
    try:
        return path.is_file() and not path.is_symlink()
    except (OSError, ValueError):  # a name too long for the file system
        return False


def same_origin(request: web.Request) -> bool:
    """Whether a browser's request comes from a page of this service (for websockets and
    state-changing requests); a request with no Origin is not from a browser page."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    allowed = {f"{request.scheme}://{request.host}", request.app[SETTINGS].base_url}
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False  # unreadable (an unclosed IPv6 bracket): not one of ours
    return f"{parts.scheme}://{parts.netloc}" in allowed


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[SETTINGS]
    headers = response.headers
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {settings.frame_ancestors}",
    )
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "geolocation=(), camera=(), microphone=()")
    headers.setdefault("Cache-Control", "no-store")
