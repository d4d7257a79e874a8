"""Handoff to human advisers: the routing queue, per-conversation locks and their adapters,
and the adviser console (a plugin for create_app)."""

from __future__ import annotations

from handoff import console, effects

PLUGINS = (console.setup, effects.setup)
