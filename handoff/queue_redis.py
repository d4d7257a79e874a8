"""The routing queue in Redis, shared by every process; each change is one atomic Lua script.

Keys under the prefix: `queue:<name>` a sorted set per queue (score = priority x 10^13 +
joined-at epoch ms), `entry` a hash conversation id -> entry JSON (waiting and claimed),
`owner` a hash conversation id -> adviser, `adviser:<name>` a set of that adviser's claims.
Scripts build key names from the prefix, so this works on one Redis server, not on a Cluster.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from handoff.queue_memory import joined_ms, normalise, order_key, score
from helpline.errors import QueueError
from helpline.ports import Priority, QueueEntry

# Shared by every script. Scores are formatted with %.0f because Lua's default number
# formatting keeps only 14 significant digits. `before` compares bytes, as Redis and Python
# order strings; Lua's `<` on strings follows the server's locale.
_PRELUDE = """
local P = ARGV[1]
local ENTRY, OWNER = P .. 'entry', P .. 'owner'
local function qkey(name) return P .. 'queue:' .. name end
local function akey(name) return P .. 'adviser:' .. name end
local function score_of(e)
  return string.format('%.0f', tonumber(e.priority) * 1e13 + tonumber(e.joined_ms))
end
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function entry_of(cid) return cjson.decode(redis.call('HGET', ENTRY, cid)) end
local function take(cid, adviser)
  redis.call('HSET', OWNER, cid, adviser)
  redis.call('SADD', akey(adviser), cid)
end
local function raise(cid, priority)
  local e = entry_of(cid)
  if priority < tonumber(e.priority) then
    e.priority = priority
    redis.call('HSET', ENTRY, cid, cjson.encode(e))
    redis.call('ZADD', qkey(e.queue), 'XX', 'LT', score_of(e), cid)
  end
end
"""

# ARGV: prefix, cid, entry json, queue, priority, score
_ENQUEUE = """
local cid = ARGV[2]
if redis.call('HEXISTS', OWNER, cid) == 1 then return 0 end
if redis.call('HEXISTS', ENTRY, cid) == 1 then
  raise(cid, tonumber(ARGV[5]))
  return 1
end
redis.call('HSET', ENTRY, cid, ARGV[3])
redis.call('ZADD', qkey(ARGV[4]), 'NX', ARGV[6], cid)
return 1
"""

# ARGV: prefix, cid, priority
_ESCALATE = """
local cid = ARGV[2]
if redis.call('HEXISTS', OWNER, cid) == 1 then return 0 end
if redis.call('HEXISTS', ENTRY, cid) == 0 then return 0 end
raise(cid, tonumber(ARGV[3]))
return 1
"""

# ARGV: prefix, cid, adviser, capacity
_CLAIM = """
local cid, adviser = ARGV[2], ARGV[3]
if redis.call('HEXISTS', OWNER, cid) == 1 then return false end
local raw = redis.call('HGET', ENTRY, cid)
if not raw then return false end
if redis.call('SCARD', akey(adviser)) >= tonumber(ARGV[4]) then return false end
redis.call('ZREM', qkey(cjson.decode(raw).queue), cid)
take(cid, adviser)
return raw
"""

# ARGV: prefix, adviser, capacity, queue names...  Returns {cid, entry json} or nil.
_CLAIM_NEXT = """
local adviser = ARGV[2]
if redis.call('SCARD', akey(adviser)) >= tonumber(ARGV[3]) then return false end
local low, low_text = nil, nil
for i = 4, #ARGV do
  local top = redis.call('ZRANGE', qkey(ARGV[i]), 0, 0, 'WITHSCORES')
  if top[1] and (low == nil or tonumber(top[2]) < low) then
    low, low_text = tonumber(top[2]), top[2]
  end
end
if low == nil then return false end
-- Equal scores (same level, same millisecond): joined_at then id, as waiting() orders them.
local best, best_at, best_queue = nil, nil, nil
for i = 4, #ARGV do
  for _, cid in ipairs(redis.call('ZRANGEBYSCORE', qkey(ARGV[i]), low_text, low_text)) do
    local at = entry_of(cid).joined_at
    if best == nil or before(at, best_at) or (at == best_at and before(cid, best)) then
      best, best_at, best_queue = cid, at, ARGV[i]
    end
  end
end
redis.call('ZREM', qkey(best_queue), best)
take(best, adviser)
return {best, redis.call('HGET', ENTRY, best)}
"""

# ARGV: prefix, cid, adviser
_RELEASE = """
local cid, adviser = ARGV[2], ARGV[3]
if redis.call('HGET', OWNER, cid) ~= adviser then return 0 end
if redis.call('HEXISTS', ENTRY, cid) == 0 then return 0 end
local e = entry_of(cid)
redis.call('ZADD', qkey(e.queue), score_of(e), cid)
redis.call('HDEL', OWNER, cid)
redis.call('SREM', akey(adviser), cid)
return 1
"""

# ARGV: prefix, cid, new queue
_TRANSFER = """
local cid = ARGV[2]
if redis.call('HEXISTS', ENTRY, cid) == 0 then return 0 end
local e = entry_of(cid)
local owner = redis.call('HGET', OWNER, cid)
if owner then
  redis.call('HDEL', OWNER, cid)
  redis.call('SREM', akey(owner), cid)
else
  redis.call('ZREM', qkey(e.queue), cid)
end
e.queue = ARGV[3]
redis.call('HSET', ENTRY, cid, cjson.encode(e))
redis.call('ZADD', qkey(e.queue), score_of(e), cid)
return 1
"""

# ARGV: prefix, cid
_REMOVE = """
local cid, found = ARGV[2], 0
if redis.call('HEXISTS', ENTRY, cid) == 1 then
  redis.call('ZREM', qkey(entry_of(cid).queue), cid)
  redis.call('HDEL', ENTRY, cid)
  found = 1
end
local owner = redis.call('HGET', OWNER, cid)
if owner then
  redis.call('HDEL', OWNER, cid)
  redis.call('SREM', akey(owner), cid)
  found = 1
end
return found
"""

# ARGV: prefix, cid.  Place among equal scores follows joined_at then id, as in waiting().
_POSITION = """
local cid = ARGV[2]
if redis.call('HEXISTS', OWNER, cid) == 1 then return false end
if redis.call('HEXISTS', ENTRY, cid) == 0 then return false end
local e = entry_of(cid)
local key = qkey(e.queue)
local s = redis.call('ZSCORE', key, cid)
if not s then return false end
local ahead = redis.call('ZCOUNT', key, '-inf', '(' .. s)
for _, other in ipairs(redis.call('ZRANGEBYSCORE', key, s, s)) do
  if other ~= cid then
    local at = entry_of(other).joined_at
    if before(at, e.joined_at) or (at == e.joined_at and before(other, cid)) then
      ahead = ahead + 1
    end
  end
end
return ahead + 1
"""

# ARGV: prefix, cid, entry json or '', queue, score, adviser or ''
_RESTORE = """
local cid, raw, adviser = ARGV[2], ARGV[3], ARGV[6]
if redis.call('HEXISTS', ENTRY, cid) == 1 or redis.call('HEXISTS', OWNER, cid) == 1 then
  return 0
end
if raw ~= '' then redis.call('HSET', ENTRY, cid, raw) end
if adviser ~= '' then
  take(cid, adviser)
elseif raw ~= '' then
  redis.call('ZADD', qkey(ARGV[4]), 'NX', ARGV[5], cid)
end
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dump(entry: QueueEntry) -> str:
    return json.dumps(
        {
            "queue": entry.queue,
            "language": entry.language,
            "priority": int(entry.priority),
            "joined_at": entry.joined_at.isoformat(timespec="microseconds"),
            # A string: Lua numbers would survive, but a string cannot be reformatted.
            "joined_ms": str(joined_ms(entry.joined_at)),
            "channel": entry.channel,
        }
    )


def _load(conversation_id: bytes | str, raw: bytes | str) -> QueueEntry:
    data = json.loads(raw)
    return QueueEntry(
        conversation_id=_text(conversation_id),
        queue=data["queue"],
        language=data["language"],
        priority=Priority(int(data["priority"])),
        joined_at=datetime.fromisoformat(data["joined_at"]),
        channel=data["channel"],
    )


@contextmanager
def _queue_errors() -> Iterator[None]:
    """Redis trouble reaches the core as a QueueError, the cause kept for the logs."""
    try:
        yield
    except RedisError as exc:
        raise QueueError("the routing queue is unavailable") from exc


class RedisQueue:
    """RoutingQueue in Redis; the caller creates and closes the client."""

    def __init__(self, client: redis.Redis, prefix: str = "helpline:") -> None:
        self._client = client
        self._prefix = prefix

        def script(body: str) -> Any:
            return client.register_script(_PRELUDE + body)

        self._enqueue = script(_ENQUEUE)
        self._escalate = script(_ESCALATE)
        self._claim = script(_CLAIM)
        self._claim_next = script(_CLAIM_NEXT)
        self._release = script(_RELEASE)
        self._transfer = script(_TRANSFER)
        self._remove = script(_REMOVE)
        self._position = script(_POSITION)
        self._restore = script(_RESTORE)

    async def _run(self, script: Any, *args: str | int) -> Any:
        with _queue_errors():
            return await script(keys=[], args=[self._prefix, *args])

    async def enqueue(self, entry: QueueEntry) -> None:
        entry = normalise(entry)
        await self._run(
            self._enqueue,
            entry.conversation_id,
            _dump(entry),
            entry.queue,
            int(entry.priority),
            score(entry.priority, joined_ms(entry.joined_at)),
        )

    async def escalate(self, conversation_id: str, priority: Priority) -> bool:
        return bool(await self._run(self._escalate, conversation_id, int(priority)))

    async def remove(self, conversation_id: str) -> bool:
        return bool(await self._run(self._remove, conversation_id))

    async def claim(self, conversation_id: str, adviser: str, capacity: int) -> QueueEntry | None:
        raw = await self._run(self._claim, conversation_id, adviser, capacity)
        return None if raw is None else _load(conversation_id, raw)

    async def claim_next(
        self, adviser: str, queues: Collection[str], capacity: int
    ) -> QueueEntry | None:
        if not queues:
            return None
        found = await self._run(self._claim_next, adviser, capacity, *sorted(set(queues)))
        return None if found is None else _load(found[0], found[1])

    async def release(self, conversation_id: str, adviser: str) -> bool:
        return bool(await self._run(self._release, conversation_id, adviser))

    async def transfer(self, conversation_id: str, queue: str) -> bool:
        return bool(await self._run(self._transfer, conversation_id, queue))

    async def waiting(self, queues: Collection[str] | None = None) -> list[QueueEntry]:
        entries, _ = await self.board()
        return entries if queues is None else [e for e in entries if e.queue in queues]

    async def board(self) -> tuple[list[QueueEntry], list[tuple[QueueEntry, str]]]:
        # One MULTI so entries and owners are read at the same instant.
        with _queue_errors():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._prefix + "entry")
                pipe.hgetall(self._prefix + "owner")
                raw_entries, raw_owners = await pipe.execute()
        owners = {_text(cid): _text(who) for cid, who in raw_owners.items()}
        entries = sorted((_load(cid, raw) for cid, raw in raw_entries.items()), key=order_key)
        waiting = [e for e in entries if e.conversation_id not in owners]
        claimed = [(e, owners[e.conversation_id]) for e in entries if e.conversation_id in owners]
        return waiting, claimed

    async def position(self, conversation_id: str) -> int | None:
        place = await self._run(self._position, conversation_id)
        return None if place is None else int(place)

    async def claims(self, adviser: str | None = None) -> dict[str, str]:
        with _queue_errors():
            if adviser is not None:
                members = await self._client.smembers(self._prefix + "adviser:" + adviser)
                return {_text(cid): adviser for cid in members}
            owners = await self._client.hgetall(self._prefix + "owner")
        return {_text(cid): _text(who) for cid, who in owners.items()}

    async def entry(self, conversation_id: str) -> QueueEntry | None:
        with _queue_errors():
            raw = await self._client.hget(self._prefix + "entry", conversation_id)
        return None if raw is None else _load(conversation_id, raw)

    async def restore(self, waiting: Iterable[QueueEntry], claims: dict[str, str]) -> None:
        """Add what Redis does not know yet; live state (another process's) always wins.

        An entry in `waiting` whose id is in `claims` is restored as claimed with that entry.
        """
        restored: set[str] = set()
        for entry in map(normalise, waiting):
            cid = entry.conversation_id
            if cid in restored:
                continue
            restored.add(cid)
            await self._run(
                self._restore,
                cid,
                _dump(entry),
                entry.queue,
                score(entry.priority, joined_ms(entry.joined_at)),
                claims.get(cid, ""),
            )
        for cid, adviser in claims.items():
            if cid not in restored:
                await self._run(self._restore, cid, "", "", 0, adviser)
