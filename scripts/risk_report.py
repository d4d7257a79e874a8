"""Measure the risk screen against the labelled cases: precision and recall per level, the
false-alarm rate on "none", and mean microseconds per message.

Run: .venv/bin/python scripts/risk_report.py [--misses] [--cases PATH]
`--misses` also lists the misclassified cases (labelled test data, never real messages).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpline.risk import LEVELS, Risk, assess, lexicon  # noqa: E402

DEFAULT_CASES = ROOT / "tests" / "risk_cases.yaml"


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    language: str
    level: str


@dataclass(frozen=True, slots=True)
class Scores:
    precision: dict[str, float]
    recall: dict[str, float]
    support: dict[str, int]
    false_alarm_rate: float
    misses: list[tuple[Case, Risk]]


def load_cases(path: Path = DEFAULT_CASES) -> list[Case]:
    """Cases from the labelled file: {level: {language: [text, ...]}}."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = [
        Case(text, language, level)
        for level, by_language in data.items()
        for language, texts in by_language.items()
        for text in texts
    ]
    for case in cases:  # an unquoted "no" or "yes" would silently become a boolean
        if not isinstance(case.text, str) or case.level not in LEVELS:
            raise ValueError(f"{path}: bad case {case!r}: quote the text, use a known level")
    return cases


def score(cases: list[Case], classify: Callable[[str, str], Risk] = assess) -> Scores:
    results = [(case, classify(case.text, case.language)) for case in cases]
    precision: dict[str, float] = {}
    recall: dict[str, float] = {}
    support: dict[str, int] = {}
    for level in LEVELS:
        labelled = [r for c, r in results if c.level == level]
        predicted = [c for c, r in results if r.level == level]
        hits = sum(1 for c, r in results if c.level == level == r.level)
        support[level] = len(labelled)
        recall[level] = hits / len(labelled) if labelled else 1.0
        precision[level] = hits / len(predicted) if predicted else 1.0
    nones = [r for c, r in results if c.level == "none"]
    alarms = sum(1 for r in nones if r.level != "none")
    return Scores(
        precision=precision,
        recall=recall,
        support=support,
        false_alarm_rate=alarms / len(nones) if nones else 0.0,
        misses=[(c, r) for c, r in results if c.level != r.level],
    )


def mean_microseconds(cases: list[Case], rounds: int = 10, repeats: int = 5) -> float:
    """Mean CPU time per message, best of `repeats` runs (other work on a busy machine would
    otherwise be counted as ours), after the one-off lexicon load and a warm-up pass."""
    lexicon()
    for case in cases:  # warm the typo cache as a running service would be
        assess(case.text, case.language)
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(rounds):
            for case in cases:
                assess(case.text, case.language)
        best = min(best, time.process_time() - start)
    return best / (rounds * len(cases)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--misses", action="store_true", help="list misclassified cases")
    args = parser.parse_args()
    cases = load_cases(args.cases)
    scores = score(cases)
    welsh = sum(1 for c in cases if c.language == "cy")
    print(f"{len(cases)} labelled cases ({welsh} in Welsh)\n")
    print(f"{'level':<10} {'cases':>6} {'precision':>10} {'recall':>8}")
    for level in LEVELS:
        print(
            f"{level:<10} {scores.support[level]:>6} "
            f"{scores.precision[level]:>10.3f} {scores.recall[level]:>8.3f}"
        )
    print(f"\nfalse alarms on none: {scores.false_alarm_rate:.1%}")
    print(f"mean CPU time per message: {mean_microseconds(cases):.1f} microseconds")
    if args.misses:
        print(f"\n{len(scores.misses)} misclassified:")
        for case, risk in scores.misses:
            print(f"  [{case.language}] want {case.level:<9} got {risk.level:<9} {risk.reasons}")
            print(f"       {case.text}")


if __name__ == "__main__":
    main()
