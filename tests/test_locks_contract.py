"""The Locks contract: MemoryLocks and RedisLocks keep one turn per conversation at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from handoff.locks_redis import LockTimeout, LockUnavailable, RedisLocks
from helpline.errors import HelplineError
from helpline.locks import MemoryLocks
from helpline.ports import Locks
from tests.support import LoopbackProxy


@dataclass
class Backend:
    """Locks under test; `another()` is a second handle, as another process would have."""

    another: Callable[[], Locks]
    clients: list[redis.Redis] = field(default_factory=list)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def redis_target(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    if request.param == "memory":
        return None
    return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")


@pytest.fixture
async def backend(redis_target: tuple[str, str] | None) -> AsyncIterator[Backend]:
    if redis_target is None:
        memory = MemoryLocks()
        yield Backend(lambda: memory)
        return
    url, prefix = redis_target
    clients: list[redis.Redis] = []

    def fresh() -> Locks:
        client = redis.Redis.from_url(url)
        clients.append(client)
        return RedisLocks(client, prefix)

    try:
        yield Backend(fresh, clients)
    finally:
        for client in clients:
            await client.aclose()


async def test_turns_of_the_same_conversation_never_overlap(backend: Backend) -> None:
    inside = 0
    most_inside = 0
    turns = 0

    async def turn(locks: Locks) -> None:
        nonlocal inside, most_inside, turns
        async with locks.hold("conv-1"):
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.01)  # widen the window an overlap would need
            inside -= 1
            turns += 1

    await asyncio.gather(*(turn(backend.another()) for _ in range(8)))

    assert turns == 8
    assert most_inside == 1


async def test_different_conversations_are_handled_at_the_same_time(backend: Backend) -> None:
    a_inside = asyncio.Event()
    b_inside = asyncio.Event()

    async def turn(locks: Locks, key: str, mine: asyncio.Event, theirs: asyncio.Event) -> None:
        async with locks.hold(key):
            mine.set()
            await theirs.wait()  # only finishes if the other conversation got in meanwhile

    async with asyncio.timeout(5):
        await asyncio.gather(
            turn(backend.another(), "conv-a", a_inside, b_inside),
            turn(backend.another(), "conv-b", b_inside, a_inside),
        )


async def test_a_failing_turn_lets_the_next_turn_in(backend: Backend) -> None:
    locks = backend.another()
    with pytest.raises(ValueError, match="flow broke"):
        async with locks.hold("conv-1"):
            raise ValueError("flow broke")

    async with asyncio.timeout(2), backend.another().hold("conv-1"):
        pass


async def test_waiting_too_long_for_a_redis_lock_raises(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        holder = RedisLocks(client, redis_prefix)
        impatient = RedisLocks(client, redis_prefix, blocking_timeout=0.3)
        async with holder.hold("conv-1"):
            with pytest.raises(LockTimeout):
                async with impatient.hold("conv-1"):
                    pytest.fail("got a lock that was held")
        async with impatient.hold("conv-1"):
            pass
    finally:
        await client.aclose()


async def test_a_killed_holders_redis_lock_frees_the_conversation_within_the_lease(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        locks = RedisLocks(client, redis_prefix, timeout=0.3, blocking_timeout=5)
        # A process that took the lock and was killed: nothing renews or releases it.
        dead = client.lock(redis_prefix + "lock:conv-1", timeout=0.3, thread_local=False)
        assert await dead.acquire(blocking=False)
        async with asyncio.timeout(3), locks.hold("conv-1"):
            pass
    finally:
        await client.aclose()


async def test_a_live_holder_keeps_its_redis_lock_past_the_lease(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        locks = RedisLocks(client, redis_prefix, timeout=0.3, blocking_timeout=0.2)
        async with locks.hold("conv-1"):
            await asyncio.sleep(1.0)  # a slow turn: three leases long
            with pytest.raises(LockTimeout):
                async with locks.hold("conv-1"):
                    pytest.fail("a second holder got in while the first was working")
    finally:
        await client.aclose()


async def test_a_redis_outage_reaches_the_core_as_a_helpline_error() -> None:
    # Port 1 refuses at once; no retries so the test does not wait out the backoff.
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(LockUnavailable) as raised:
            async with RedisLocks(client, "unreachable:").hold("conv-1"):
                pytest.fail("held a lock without Redis")
        assert isinstance(raised.value, HelplineError)
    finally:
        await client.aclose()


async def test_a_turn_that_ends_during_a_lease_renewal_still_frees_the_conversation(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py can swallow a cancellation that lands while a command is on the wire, so a
    # renewal in flight when the turn ended once kept renewing the lease for ever, and the
    # conversation's next message waited for a lock nobody would give back (found with 1,000
    # conversations on PostgreSQL + Redis). Each turn here ends while a renewal is in flight,
    # a few steps of the event loop into it.
    renewing = asyncio.Event()
    reacquire = Lock.reacquire

    async def observed(lock: Lock) -> bool:
        renewing.set()
        return await reacquire(lock)

    monkeypatch.setattr(Lock, "reacquire", observed)
    client = redis.Redis.from_url(redis_url)
    try:
        locks = RedisLocks(client, redis_prefix, timeout=0.06, blocking_timeout=1)

        async def turn(steps: int) -> None:
            renewing.clear()
            async with locks.hold("conv-1"):
                await renewing.wait()
                for _ in range(steps):
                    await asyncio.sleep(0)

        for n in range(60):
            # A task of its own: a stuck unlock must fail the test, not hang it.
            running = asyncio.create_task(turn(n % 6))
            await asyncio.wait({running}, timeout=2)
            assert running.done(), f"turn {n} could not let go of its lock"
            running.result()
            assert not await client.exists(redis_prefix + "lock:conv-1"), f"held after turn {n}"
    finally:
        await client.aclose()


async def test_a_redis_blip_shorter_than_the_lease_does_not_let_a_second_turn_in(
    redis_url: str, redis_prefix: str
) -> None:
    # A renewal that failed once used to stop renewing: the lease then ran out while the turn
    # was still working (waiting for Twilio, say), and another instance's turn of the same
    # conversation ran beside it.
    proxy = LoopbackProxy(urlsplit(redis_url).port or 6379)
    port = await proxy.start()
    through = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    direct = redis.Redis.from_url(redis_url)
    try:
        # Seconds, not tenths: on a busy 2-core CI machine the event loop can lag by a few
        # tenths, which a 0.6 s lease with a 0.25 s blip did not leave room for.
        holder = RedisLocks(through, redis_prefix, timeout=2.4, blocking_timeout=4)
        other = RedisLocks(direct, redis_prefix, timeout=2.4, blocking_timeout=30)
        inside: list[str] = []

        async def second() -> None:
            await asyncio.sleep(0.4)
            async with other.hold("conv-1"):
                inside.append("second")

        async with holder.hold("conv-1"):
            inside.append("first")
            contender = asyncio.create_task(second())
            await asyncio.sleep(1.2)  # just after a renewal
            proxy.cut_off()
            await asyncio.sleep(1.0)  # a renewal falls in the gap
            proxy.cut = False
            await asyncio.sleep(4.0)  # well past the lease the failed renewal would have given
            assert inside == ["first"], "a second turn got in while the first was working"
            inside.append("first done")
        await asyncio.wait_for(contender, 10)  # and then it had its turn
        assert inside == ["first", "first done", "second"]
    finally:
        await through.aclose()
        await direct.aclose()
        proxy.close()
