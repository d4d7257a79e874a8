"""The in-process routing queue, and the ordering rules every RoutingQueue shares.

One process only: state lives in dicts and is reloaded from the database with `restore`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta

from helpline.errors import QueueError
from helpline.ports import Priority, QueueEntry

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# One priority band is wider than any epoch-millisecond time we will meet (~317 years),
# so the band always dominates and time orders within it.
BAND = 10**13


def joined_ms(joined_at: datetime) -> int:
    """Epoch milliseconds, floored; exact integer arithmetic (no float rounding)."""
    return (joined_at - _EPOCH) // _MS


def score(priority: int, joined_at_ms: int) -> int:
    return int(priority) * BAND + joined_at_ms


def normalise(entry: QueueEntry) -> QueueEntry:
    """The entry as every queue stores and returns it: UTC joined_at, Priority enum.

    A naive datetime is refused rather than guessed: a wrong guess silently reorders the queue.
    """
    if entry.joined_at.tzinfo is None or entry.joined_at.utcoffset() is None:
        raise QueueError("joined_at must be timezone-aware")
    return dataclasses.replace(
        entry, priority=Priority(entry.priority), joined_at=entry.joined_at.astimezone(UTC)
    )


def order_key(entry: QueueEntry) -> tuple[int, datetime, str]:
    """Queue order: most urgent first, longest wait first, then conversation id for ties.

    Equal to sorting by the Redis score, then joined_at, then id, because the score's
    millisecond part is a floor of joined_at.
    """
    return (int(entry.priority), entry.joined_at, entry.conversation_id)


class MemoryQueue:
    """RoutingQueue in a dict; an asyncio.Lock makes each operation one atomic step."""

    def __init__(self) -> None:
        # Waiting and claimed entries alike; a conversation is waiting when it has no owner.
        self._entries: dict[str, QueueEntry] = {}
        # Claims: conversation id -> adviser. A claim restored without its entry has no
        # row in _entries (see restore).
        self._owners: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def _is_waiting(self, conversation_id: str) -> bool:
        return conversation_id in self._entries and conversation_id not in self._owners

    def _held_by(self, adviser: str) -> int:
        return sum(1 for owner in self._owners.values() if owner == adviser)

    def _raise_priority(self, conversation_id: str, priority: Priority) -> None:
        current = self._entries[conversation_id]
        if priority < current.priority:
            self._entries[conversation_id] = dataclasses.replace(current, priority=priority)

    async def enqueue(self, entry: QueueEntry) -> None:
        entry = normalise(entry)
        async with self._lock:
            cid = entry.conversation_id
            if cid in self._owners:
                return
            if cid in self._entries:
                self._raise_priority(cid, entry.priority)
                return
            self._entries[cid] = entry

    async def escalate(self, conversation_id: str, priority: Priority) -> bool:
        async with self._lock:
            if not self._is_waiting(conversation_id):
                return False
            self._raise_priority(conversation_id, Priority(priority))
            return True

    async def remove(self, conversation_id: str) -> bool:
        async with self._lock:
            had_entry = self._entries.pop(conversation_id, None) is not None
            had_owner = self._owners.pop(conversation_id, None) is not None
            return had_entry or had_owner

    async def claim(self, conversation_id: str, adviser: str, capacity: int) -> QueueEntry | None:
        async with self._lock:
            if not self._is_waiting(conversation_id) or self._held_by(adviser) >= capacity:
                return None
            self._owners[conversation_id] = adviser
            return self._entries[conversation_id]

    async def claim_next(
        self, adviser: str, queues: Collection[str], capacity: int
    ) -> QueueEntry | None:
        async with self._lock:
            if self._held_by(adviser) >= capacity:
                return None
            candidates = [e for e in self._waiting_entries() if e.queue in queues]
            if not candidates:
                return None
            first = min(candidates, key=order_key)
            self._owners[first.conversation_id] = adviser
            return first

    async def release(self, conversation_id: str, adviser: str) -> bool:
        async with self._lock:
            # A claim restored without its entry cannot go back: we would not know where.
            if self._owners.get(conversation_id) != adviser or conversation_id not in self._entries:
                return False
            del self._owners[conversation_id]
            return True

    async def transfer(self, conversation_id: str, queue: str) -> bool:
        async with self._lock:
            current = self._entries.get(conversation_id)
            if current is None:
                return False
            self._owners.pop(conversation_id, None)
            self._entries[conversation_id] = dataclasses.replace(current, queue=queue)
            return True

    def _waiting_entries(self) -> list[QueueEntry]:
        return [e for cid, e in self._entries.items() if cid not in self._owners]

    async def waiting(self, queues: Collection[str] | None = None) -> list[QueueEntry]:
        entries = self._waiting_entries()
        if queues is not None:
            entries = [e for e in entries if e.queue in queues]
        return sorted(entries, key=order_key)

    async def board(self) -> tuple[list[QueueEntry], list[tuple[QueueEntry, str]]]:
        claimed = [(self._entries[c], a) for c, a in self._owners.items() if c in self._entries]
        claimed.sort(key=lambda held: order_key(held[0]))
        return await self.waiting(), claimed

    async def position(self, conversation_id: str) -> int | None:
        if not self._is_waiting(conversation_id):
            return None
        own = self._entries[conversation_id]
        mine = order_key(own)
        ahead = sum(
            1 for e in self._waiting_entries() if e.queue == own.queue and order_key(e) < mine
        )
        return ahead + 1

    async def claims(self, adviser: str | None = None) -> dict[str, str]:
        return {c: a for c, a in self._owners.items() if adviser is None or a == adviser}

    async def entry(self, conversation_id: str) -> QueueEntry | None:
        return self._entries.get(conversation_id)

    async def restore(self, waiting: Iterable[QueueEntry], claims: dict[str, str]) -> None:
        """Add what the queue does not know yet; a conversation it knows keeps its live state.

        An entry in `waiting` whose id is in `claims` is restored as claimed with that entry
        (the only way to keep a claimed conversation's queue and priority for `release`).
        """
        entries = [normalise(e) for e in waiting]
        async with self._lock:
            known = set(self._entries) | set(self._owners)
            for entry in entries:
                cid = entry.conversation_id
                if cid in known:
                    continue
                known.add(cid)
                self._entries[cid] = entry
                if cid in claims:
                    self._owners[cid] = claims[cid]
            for cid, adviser in claims.items():
                if cid not in known:
                    self._owners[cid] = adviser
