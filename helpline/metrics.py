"""Prometheus metrics. Labels are small fixed sets (channel, journey, level, queue kind,
outcome, reason): never a reference, an address, a programme-specific person, or text."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """One registry per app, so tests and several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_in = Counter(
            "helpline_messages_in", "Messages received from people", ["channel"], registry=r
        )
        self.messages_out = Counter(
            "helpline_messages_out", "Messages sent to people", ["channel", "author"], registry=r
        )
        self.delivery_failures = Counter(
            "helpline_delivery_failures",
            "Messages a channel could not deliver",
            ["channel"],
            registry=r,
        )
        self.turns_superseded = Counter(
            "helpline_turns_superseded",
            "Turns dropped because an overlapping turn had answered their messages",
            registry=r,
        )
        self.duplicates = Counter(
            "helpline_duplicate_deliveries",
            "Redelivered inbound messages dropped",
            ["channel"],
            registry=r,
        )
        self.conversations = Counter(
            "helpline_conversations_started", "Journeys started", ["journey"], registry=r
        )
        self.risk = Counter(
            "helpline_risk_detected", "Messages screened at each risk level", ["level"], registry=r
        )
        self.handoffs = Counter(
            "helpline_handoffs",
            "Conversations handed to the adviser queue",
            ["queue", "reason"],
            registry=r,
        )
        self.outcomes = Counter(
            "helpline_handoff_outcomes",
            "Adviser conversations ended, by outcome",
            ["outcome"],
            registry=r,
        )
        self.referrals = Counter(
            "helpline_referrals", "Consented referrals to programmes", ["programme"], registry=r
        )
        self.rejections = Counter(
            "helpline_webhook_rejections",
            "Webhook requests refused",
            ["channel", "reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "helpline_queue_depth", "Conversations waiting for an adviser", ["queue"], registry=r
        )
        self.advisers_online = Gauge(
            "helpline_advisers_online", "Advisers with the console open", registry=r
        )
        self.wait_seconds = Histogram(
            "helpline_queue_wait_seconds",
            "Time from joining the queue to an adviser joining",
            ["queue"],
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200),
            registry=r,
        )
        self.turn_seconds = Histogram(
            "helpline_turn_seconds",
            "Time to handle one batch of a conversation's messages",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )


def queue_kind(queue: str) -> str:
    """Programme queues are labelled by programme id (a handful, configured in content).
    A queue held for one adviser is labelled "adviser": staff names stay out of metrics."""
    if queue.startswith("adviser:"):
        return "adviser"
    return queue if len(queue) <= 60 else queue[:60]
