"""Handoff to human advisers: the routing queue, per-conversation locks and their adapters."""
