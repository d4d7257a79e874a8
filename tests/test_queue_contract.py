"""The RoutingQueue contract: every test runs against MemoryQueue and RedisQueue alike."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from handoff.queue_memory import MemoryQueue
from handoff.queue_redis import RedisQueue
from helpline.errors import QueueError
from helpline.ports import Priority, QueueEntry, RoutingQueue

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def waiting_entry(
    cid: str,
    *,
    minutes: float = 0,
    priority: Priority = Priority.NORMAL,
    queue: str = "helpline",
    joined_at: datetime | None = None,
) -> QueueEntry:
    return QueueEntry(
        conversation_id=cid,
        queue=queue,
        language="en",
        priority=priority,
        joined_at=joined_at or T0 + timedelta(minutes=minutes),
        channel="web",
    )


@dataclass
class Backend:
    """A queue under test, and a way to open another handle on the same state."""

    queue: RoutingQueue
    another: Callable[[], Awaitable[RoutingQueue]]
    clients: list[redis.Redis] = field(default_factory=list)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def redis_target(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None for the memory queue; (url, prefix) for Redis, asked for only by that variant."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")


@pytest.fixture
async def backend(redis_target: tuple[str, str] | None) -> AsyncIterator[Backend]:
    if redis_target is None:
        memory = MemoryQueue()

        async def same() -> RoutingQueue:
            return memory

        yield Backend(memory, same)
        return

    url, prefix = redis_target
    clients: list[redis.Redis] = []

    async def fresh() -> RoutingQueue:
        # Its own client and connection pool: what another process would have.
        client = redis.Redis.from_url(url)
        clients.append(client)
        return RedisQueue(client, prefix=prefix)

    try:
        yield Backend(await fresh(), fresh, clients)
    finally:
        for client in clients:
            await client.aclose()


async def ids(queue: RoutingQueue, queues: list[str] | None = None) -> list[str]:
    return [e.conversation_id for e in await queue.waiting(queues)]


# --- order ---------------------------------------------------------------------------------


async def test_most_urgent_conversation_is_offered_first(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("normal", minutes=0))
    await q.enqueue(waiting_entry("concern", minutes=1, priority=Priority.CONCERN))
    await q.enqueue(waiting_entry("immediate", minutes=3, priority=Priority.IMMEDIATE))
    await q.enqueue(waiting_entry("suicide", minutes=2, priority=Priority.SUICIDE))

    assert await ids(q) == ["immediate", "suicide", "concern", "normal"]
    claimed = await q.claim_next("ann", ["helpline"], capacity=5)
    assert claimed is not None and claimed.conversation_id == "immediate"


async def test_longest_wait_comes_first_within_a_level(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("late", minutes=5))
    await q.enqueue(waiting_entry("early", minutes=1))
    await q.enqueue(waiting_entry("middle", minutes=3))

    assert await ids(q) == ["early", "middle", "late"]


async def test_same_moment_is_ordered_by_exact_time_then_by_id(backend: Backend) -> None:
    # Same millisecond (one Redis score): microseconds decide, then the conversation id.
    q = backend.queue
    await q.enqueue(waiting_entry("b", joined_at=T0 + timedelta(microseconds=300)))
    await q.enqueue(waiting_entry("a", joined_at=T0 + timedelta(microseconds=300)))
    await q.enqueue(waiting_entry("z", joined_at=T0 + timedelta(microseconds=100)))
    await q.enqueue(waiting_entry("c", joined_at=T0 + timedelta(microseconds=300), queue="family"))

    assert await ids(q) == ["z", "a", "b", "c"]
    assert [await q.position(c) for c in ("z", "a", "b", "c")] == [1, 2, 3, 1]
    order = [await q.claim_next("ann", ["helpline", "family"], capacity=9) for _ in range(4)]
    assert [e.conversation_id for e in order if e] == ["z", "a", "b", "c"]


async def test_escalation_moves_a_conversation_ahead_of_calmer_ones(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("first", minutes=0))
    await q.enqueue(waiting_entry("worried", minutes=9))

    assert await q.escalate("worried", Priority.SUICIDE) is True

    assert await ids(q) == ["worried", "first"]
    escalated = await q.entry("worried")
    assert escalated is not None
    assert escalated.priority == Priority.SUICIDE
    assert escalated.joined_at == T0 + timedelta(minutes=9)


async def test_escalation_never_lowers_priority(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("urgent", minutes=9, priority=Priority.IMMEDIATE))
    await q.enqueue(waiting_entry("calm", minutes=0))

    assert await q.escalate("urgent", Priority.NORMAL) is True
    await q.enqueue(waiting_entry("urgent", minutes=9, priority=Priority.CONCERN))

    assert await ids(q) == ["urgent", "calm"]
    kept = await q.entry("urgent")
    assert kept is not None and kept.priority == Priority.IMMEDIATE


async def test_escalating_a_conversation_that_is_not_waiting_says_so(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("taken"))
    await q.claim("taken", "ann", capacity=1)

    assert await q.escalate("taken", Priority.IMMEDIATE) is False
    assert await q.escalate("nobody", Priority.IMMEDIATE) is False


async def test_enqueueing_again_keeps_the_original_place(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("a", minutes=0))
    await q.enqueue(waiting_entry("b", minutes=1))
    await q.enqueue(waiting_entry("c", minutes=2))

    await q.enqueue(waiting_entry("a", minutes=30))

    assert await ids(q) == ["a", "b", "c"]
    again = await q.entry("a")
    assert again is not None and again.joined_at == T0


async def test_enqueueing_again_more_urgently_raises_priority_keeping_join_time(
    backend: Backend,
) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("a", minutes=0, priority=Priority.CONCERN))
    await q.enqueue(waiting_entry("b", minutes=5))
    await q.enqueue(waiting_entry("c", minutes=6, priority=Priority.CONCERN))

    await q.enqueue(waiting_entry("c", minutes=60, priority=Priority.SUICIDE))

    assert await ids(q) == ["c", "a", "b"]
    raised = await q.entry("c")
    assert raised is not None
    assert (raised.priority, raised.joined_at) == (Priority.SUICIDE, T0 + timedelta(minutes=6))


async def test_enqueueing_a_claimed_conversation_leaves_it_with_its_adviser(
    backend: Backend,
) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("a"))
    await q.claim("a", "ann", capacity=1)

    await q.enqueue(waiting_entry("a", priority=Priority.IMMEDIATE))

    assert await q.waiting() == []
    assert await q.claims() == {"a": "ann"}


async def test_waiting_can_be_narrowed_to_some_queues(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("h", minutes=2))
    await q.enqueue(waiting_entry("f", minutes=1, queue="family"))
    await q.enqueue(waiting_entry("p", minutes=0, queue="programme:7"))

    assert await ids(q) == ["p", "f", "h"]
    assert await ids(q, ["helpline", "family"]) == ["f", "h"]
    assert await ids(q, []) == []


async def test_join_time_comes_back_in_utc_and_naive_time_is_refused(backend: Backend) -> None:
    q = backend.queue
    london = datetime(2025, 7, 1, 13, 0, tzinfo=ZoneInfo("Europe/London"))
    await q.enqueue(waiting_entry("a", joined_at=london))

    stored = await q.entry("a")
    assert stored is not None
    assert stored.joined_at == datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
    assert stored.joined_at.utcoffset() == timedelta(0)
    with pytest.raises(QueueError):
        await q.enqueue(waiting_entry("b", joined_at=datetime(2025, 7, 1, 12, 0)))


# --- claims --------------------------------------------------------------------------------


async def ten_waiting(q: RoutingQueue) -> set[str]:
    cids = {f"conv-{i}" for i in range(10)}
    for i, cid in enumerate(sorted(cids)):
        await q.enqueue(waiting_entry(cid, minutes=i))
    return cids


async def race(backend: Backend, claim: Callable[[RoutingQueue, int], Awaitable[object]]) -> list:
    """Run 50 claimers, each on its own handle, released together once all are connected."""
    handles = [await backend.another() for _ in range(50)]
    for handle in handles:
        await handle.claims("warm-up")  # open each connection before the start line
    start = asyncio.Barrier(len(handles))

    async def claimer(n: int) -> object:
        await start.wait()
        return await claim(handles[n], n)

    return await asyncio.gather(*(claimer(n) for n in range(len(handles))))


async def test_each_conversation_goes_to_exactly_one_adviser_under_a_race(
    backend: Backend,
) -> None:
    cids = await ten_waiting(backend.queue)

    results = await race(backend, lambda q, n: q.claim(f"conv-{n % 10}", f"adviser-{n}", 10))

    won = [e.conversation_id for e in results if e is not None]
    assert Counter(won) == Counter(cids)
    claims = await backend.queue.claims()
    assert set(claims) == cids
    assert await backend.queue.waiting() == []


async def test_advisers_with_capacity_one_get_one_conversation_each_under_a_race(
    backend: Backend,
) -> None:
    # 5 advisers each try 10 times: each wins exactly once, taking the 5 longest waiting.
    cids = sorted(await ten_waiting(backend.queue))

    results = await race(backend, lambda q, n: q.claim_next(f"adviser-{n % 5}", ["helpline"], 1))

    won = [e.conversation_id for e in results if e is not None]
    assert sorted(won) == cids[:5]
    claims = await backend.queue.claims()
    assert Counter(claims.values()) == Counter({f"adviser-{i}": 1 for i in range(5)})
    assert await ids(backend.queue) == cids[5:]


async def test_claim_returns_the_entry_and_cannot_be_repeated(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("a", priority=Priority.CONCERN))

    claimed = await q.claim("a", "ann", capacity=2)

    assert claimed == waiting_entry("a", priority=Priority.CONCERN)
    assert await q.claim("a", "bob", capacity=2) is None
    assert await q.claim("unknown", "bob", capacity=2) is None
    assert await q.claims() == {"a": "ann"}
    assert await q.entry("a") == claimed
    assert await q.position("a") is None


async def test_the_board_shows_waiting_and_claimed_conversations_in_queue_order(
    backend: Backend,
) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("calm", minutes=0))
    await q.enqueue(waiting_entry("later", minutes=5))
    await q.enqueue(waiting_entry("danger", minutes=9, priority=Priority.IMMEDIATE))
    await q.enqueue(waiting_entry("held-late", minutes=7, queue="family"))
    await q.enqueue(waiting_entry("held-early", minutes=1))
    await q.claim("held-late", "bob", capacity=2)
    await q.claim("held-early", "ann", capacity=2)

    waiting, claimed = await q.board()

    assert [e.conversation_id for e in waiting] == ["danger", "calm", "later"]
    assert claimed == [
        (waiting_entry("held-early", minutes=1), "ann"),
        (waiting_entry("held-late", minutes=7, queue="family"), "bob"),
    ]


async def test_claim_refuses_an_adviser_at_capacity(backend: Backend) -> None:
    q = backend.queue
    for cid in ("a", "b", "c"):
        await q.enqueue(waiting_entry(cid))

    assert await q.claim("a", "ann", capacity=2) is not None
    assert await q.claim("b", "ann", capacity=2) is not None
    assert await q.claim("c", "ann", capacity=2) is None

    assert await q.claims("ann") == {"a": "ann", "b": "ann"}
    assert await ids(q) == ["c"]


async def test_claim_next_respects_the_advisers_capacity(backend: Backend) -> None:
    q = backend.queue
    for i, cid in enumerate("abc"):
        await q.enqueue(waiting_entry(cid, minutes=i))

    first = await q.claim_next("ann", ["helpline"], capacity=2)
    second = await q.claim_next("ann", ["helpline"], capacity=2)
    third = await q.claim_next("ann", ["helpline"], capacity=2)

    assert [first and first.conversation_id, second and second.conversation_id] == ["a", "b"]
    assert third is None
    assert await q.claims("ann") == {"a": "ann", "b": "ann"}
    other = await q.claim_next("bob", ["helpline"], capacity=2)
    assert other is not None and other.conversation_id == "c"


async def test_claim_next_only_takes_from_the_queues_the_adviser_may_take(
    backend: Backend,
) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("programme", minutes=0, queue="programme:3"))
    await q.enqueue(waiting_entry("family", minutes=1, priority=Priority.SUICIDE, queue="family"))
    await q.enqueue(waiting_entry("helpline", minutes=2))

    assert await q.claim_next("ann", [], capacity=5) is None
    taken = await q.claim_next("ann", ["helpline", "programme:3"], capacity=5)
    assert taken is not None and taken.conversation_id == "programme"
    taken = await q.claim_next("ann", ["helpline", "programme:3"], capacity=5)
    assert taken is not None and taken.conversation_id == "helpline"
    assert await q.claim_next("ann", ["helpline", "programme:3"], capacity=5) is None
    assert await ids(q) == ["family"]


async def test_claim_next_takes_the_most_urgent_across_queues(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("helpline-old", minutes=0))
    await q.enqueue(
        waiting_entry("family-new", minutes=9, priority=Priority.CONCERN, queue="family")
    )
    await q.enqueue(waiting_entry("family-old", minutes=1, queue="family"))

    order = [await q.claim_next("ann", ["helpline", "family"], capacity=9) for _ in range(3)]

    assert [e.conversation_id for e in order if e] == ["family-new", "helpline-old", "family-old"]


# --- release, transfer, position, remove ------------------------------------------------


async def test_release_puts_a_conversation_back_in_its_original_place(backend: Backend) -> None:
    q = backend.queue
    for i, cid in enumerate("abc"):
        await q.enqueue(waiting_entry(cid, minutes=i))
    await q.claim("b", "ann", capacity=1)
    await q.enqueue(waiting_entry("d", minutes=5))

    assert await q.release("b", "ann") is True

    assert await ids(q) == ["a", "b", "c", "d"]
    assert await q.position("b") == 2
    assert await q.claims() == {}
    # The adviser's capacity is free again.
    assert await q.claim("c", "ann", capacity=1) is not None


async def test_only_the_claiming_adviser_can_release(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("a"))
    await q.claim("a", "ann", capacity=1)

    assert await q.release("a", "bob") is False
    assert await q.release("unknown", "ann") is False
    assert await q.claims() == {"a": "ann"}
    assert await q.release("a", "ann") is True
    assert await q.release("a", "ann") is False


async def test_transfer_moves_a_waiting_conversation_to_the_other_queue(
    backend: Backend,
) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("moving", minutes=0))
    await q.enqueue(waiting_entry("fam-1", minutes=-5, queue="family"))
    await q.enqueue(waiting_entry("fam-2", minutes=5, queue="family"))

    assert await q.transfer("moving", "family") is True

    assert await ids(q, ["helpline"]) == []
    assert await ids(q, ["family"]) == ["fam-1", "moving", "fam-2"]
    moved = await q.entry("moving")
    assert moved is not None
    assert (moved.queue, moved.joined_at) == ("family", T0)
    assert await q.position("moving") == 2
    assert await q.transfer("unknown", "family") is False


async def test_transfer_of_a_claimed_conversation_frees_the_adviser(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("a", priority=Priority.CONCERN))
    await q.claim("a", "ann", capacity=1)

    assert await q.transfer("a", "programme:9") is True

    assert await q.claims() == {}
    assert await ids(q, ["programme:9"]) == ["a"]
    taken = await q.claim_next("bob", ["programme:9"], capacity=1)
    assert taken == waiting_entry("a", priority=Priority.CONCERN, queue="programme:9")


async def test_position_is_the_place_within_the_conversations_own_queue(
    backend: Backend,
) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("h1", minutes=0))
    await q.enqueue(waiting_entry("f1", minutes=1, queue="family"))
    await q.enqueue(waiting_entry("h2", minutes=2))
    await q.enqueue(waiting_entry("h3", minutes=3, priority=Priority.SUICIDE))

    assert await q.position("h3") == 1
    assert await q.position("h1") == 2
    assert await q.position("h2") == 3
    assert await q.position("f1") == 1
    assert await q.position("nobody") is None
    await q.claim("h3", "ann", capacity=1)
    assert await q.position("h3") is None
    assert await q.position("h2") == 2


async def test_remove_cancels_a_waiting_or_claimed_conversation(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("waiting", minutes=0))
    await q.enqueue(waiting_entry("claimed", minutes=1))
    await q.enqueue(waiting_entry("staying", minutes=2))
    await q.claim("claimed", "ann", capacity=1)

    assert await q.remove("waiting") is True
    assert await q.remove("claimed") is True
    assert await q.remove("waiting") is False

    assert await ids(q) == ["staying"]
    assert await q.position("staying") == 1
    assert await q.claims() == {}
    assert await q.entry("waiting") is None
    assert await q.entry("claimed") is None
    # A removed conversation can come back, at the back of the queue.
    await q.enqueue(waiting_entry("waiting", minutes=10))
    assert await ids(q) == ["staying", "waiting"]


# --- start-up ----------------------------------------------------------------------------


async def test_restore_rebuilds_waiting_and_claimed_conversations(backend: Backend) -> None:
    q = backend.queue
    entries = [
        waiting_entry("b", minutes=1),
        waiting_entry("a", minutes=0, priority=Priority.CONCERN),
        waiting_entry("mine", minutes=2, queue="family"),
    ]
    claims = {"mine": "ann", "lost-entry": "bob"}

    await q.restore(entries, claims)
    await q.restore(entries, claims)  # idempotent

    assert await ids(q) == ["a", "b"]
    assert await q.claims() == claims
    assert await q.entry("mine") == entries[2]
    # A claim whose entry was lost is not shown on the board (nothing to show it by).
    assert await q.board() == ([entries[1], entries[0]], [(entries[2], "ann")])
    # Restored claims count towards capacity, and a restored claim can be released.
    assert await q.claim("a", "ann", capacity=1) is None
    assert await q.release("mine", "ann") is True
    assert await ids(q) == ["a", "b", "mine"]


async def test_restore_never_overrides_what_the_queue_already_knows(backend: Backend) -> None:
    q = backend.queue
    await q.enqueue(waiting_entry("live", minutes=5))

    await q.restore([waiting_entry("live", minutes=0, queue="family")], {"live": "ann"})

    assert await q.waiting() == [waiting_entry("live", minutes=5)]
    assert await q.claims() == {}


async def test_a_fresh_redis_queue_sees_the_same_state_after_a_restart(
    redis_url: str, redis_prefix: str
) -> None:
    before = redis.Redis.from_url(redis_url)
    try:
        q = RedisQueue(before, prefix=redis_prefix)
        await q.enqueue(waiting_entry("a", minutes=0))
        await q.enqueue(waiting_entry("b", minutes=1, priority=Priority.SUICIDE))
        await q.enqueue(waiting_entry("c", minutes=2, queue="family"))
        await q.claim("a", "ann", capacity=1)
    finally:
        await before.aclose()

    after = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        q = RedisQueue(after, prefix=redis_prefix)
        assert await q.waiting() == [
            waiting_entry("b", minutes=1, priority=Priority.SUICIDE),
            waiting_entry("c", minutes=2, queue="family"),
        ]
        assert await q.claims() == {"a": "ann"}
        assert await q.claims("ann") == {"a": "ann"}
        assert await q.claim("b", "ann", capacity=1) is None
        assert await q.release("a", "ann") is True
        assert await ids(q, ["helpline"]) == ["b", "a"]
    finally:
        await after.aclose()


# --- the fake cannot drift ---------------------------------------------------------------

CIDS = ["a", "b", "c", "d"]
QUEUES = ["helpline", "family"]
ADVISERS = ["ann", "bob"]
enqueues = st.tuples(
    st.just("enqueue"),
    st.sampled_from(CIDS),
    st.sampled_from(QUEUES),
    st.sampled_from(Priority),
    # Few distinct times, so equal join times, equal scores (same millisecond) and
    # different milliseconds all come up often.
    st.sampled_from([0, 400, 700, 2000]).map(lambda us: T0 + timedelta(microseconds=us)),
)
operations = st.one_of(
    enqueues,
    st.tuples(st.just("escalate"), st.sampled_from(CIDS), st.sampled_from(Priority)),
    st.tuples(
        st.just("claim"), st.sampled_from(CIDS), st.sampled_from(ADVISERS), st.integers(0, 2)
    ),
    st.tuples(
        st.just("claim_next"),
        st.sampled_from(ADVISERS),
        st.lists(st.sampled_from(QUEUES), max_size=2),
        st.integers(0, 2),
    ),
    st.tuples(st.just("release"), st.sampled_from(CIDS), st.sampled_from(ADVISERS)),
    st.tuples(st.just("transfer"), st.sampled_from(CIDS), st.sampled_from(QUEUES)),
    st.tuples(st.just("remove"), st.sampled_from(CIDS)),
)


async def apply(q: RoutingQueue, op: tuple) -> object:
    name, *args = op
    if name == "enqueue":
        cid, queue, priority, joined_at = args
        await q.enqueue(waiting_entry(cid, queue=queue, priority=priority, joined_at=joined_at))
        return None
    return await getattr(q, name)(*args)


async def snapshot(q: RoutingQueue) -> tuple:
    return (
        await q.board(),
        await q.waiting(),
        await q.claims(),
        [await q.claims(a) for a in ADVISERS],
        [await q.position(c) for c in CIDS],
        [await q.entry(c) for c in CIDS],
    )


@pytest.mark.redis
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(first=st.lists(enqueues, min_size=2, max_size=8), then=st.lists(operations, max_size=20))
async def test_memory_and_redis_queues_agree_on_any_sequence_of_operations(
    redis_url: str, redis_prefix: str, first: list[tuple], then: list[tuple]
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        # Every example gets its own keys; the fixture removes them all at the end.
        real = RedisQueue(client, prefix=f"{redis_prefix}{secrets.token_hex(4)}:")
        fake = MemoryQueue()
        for op in first + then:
            assert await apply(real, op) == await apply(fake, op), op
            assert await snapshot(real) == await snapshot(fake), op
    finally:
        await client.aclose()


async def test_a_redis_outage_reaches_the_core_as_a_queue_error() -> None:
    # Port 1 refuses at once; no retries so the test does not wait out the backoff.
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        q = RedisQueue(client, prefix="unreachable:")
        with pytest.raises(QueueError) as raised:
            await q.claim_next("ann", ["helpline"], capacity=1)
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
        with pytest.raises(QueueError):
            await q.waiting()
    finally:
        await client.aclose()
