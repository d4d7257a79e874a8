"""Measure a clean git worktree instead of the shared tree: set HELPLINE_BENCH_TREE=<path>.

The project is installed editable, and the editable finder quietly fills any module missing
from a worktree with the shared tree's copy; that finder is removed so what is measured is
exactly what is committed. A journey or module not yet committed (helpline/risk.py) is
replaced by a stand-in that screens nothing, and the report says so."""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _editable(obj: object) -> bool:
    names = (getattr(obj, "__module__", ""), getattr(obj, "__qualname__", ""), repr(obj))
    return any("editable" in str(n).lower() for n in names)


@dataclass(frozen=True)
class _NoRisk:
    level: str = "none"
    reasons: tuple[str, ...] = ()


def _no_risk(text: str, language: str = "en") -> _NoRisk:
    return _NoRisk()


def isolate() -> Path:
    """Put the tree to measure first on sys.path (call before importing helpline); return it."""
    tree = os.environ.get("HELPLINE_BENCH_TREE")
    if not tree:
        return ROOT
    path = Path(tree).resolve()
    sys.meta_path[:] = [f for f in sys.meta_path if not _editable(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if not _editable(h)]
    sys.path_importer_cache.clear()
    sys.path.insert(0, str(path))
    if not (path / "helpline" / "risk.py").exists():
        import helpline

        stand_in = types.ModuleType("helpline.risk")
        stand_in.assess = _no_risk  # type: ignore[attr-defined]
        stand_in.Risk = _NoRisk  # type: ignore[attr-defined]
        sys.modules["helpline.risk"] = stand_in
        helpline.risk = stand_in  # type: ignore[attr-defined]
    return path


def has_risk(tree: Path) -> bool:
    return (tree / "helpline" / "risk.py").exists()


def tree_path() -> Path:
    tree = os.environ.get("HELPLINE_BENCH_TREE")
    return Path(tree).resolve() if tree else ROOT
