"""Handoff to human advisers: the routing queue, per-conversation locks and their adapters,
the adviser console, and its statistics and admin pages (plugins for create_app)."""

from __future__ import annotations

from handoff import admin, console, effects, stats

# The console first: the statistics and admin pages use its static files and sessions.
PLUGINS = (console.setup, effects.setup, stats.setup, admin.setup)
