"""What placing an answer to "where are you?" costs (helpline/directory.py, find_area): the
event loop waits for it, so a long message at that question holds every other conversation of
the process. `python -m bench.area_cost [--rounds 5]`; HELPLINE_BENCH_TREE=<worktree> measures
another commit (bench/tree.py), so two can be compared in one sitting.

Prints, in milliseconds, each kind of answer's median over --rounds: short answers (a town, a
typo, a postcode, a sentence) and long messages of 1,000-4,000 characters that name no place
or name one late, as someone telling their story at that question would."""

from __future__ import annotations

import argparse
import json
import random
import time

from bench.tree import isolate

TREE = isolate()

from bench.server import pin  # noqa: E402
from bench.stats import median  # noqa: E402

SHORT = [
    "Taunton",
    "Tauntn",
    "NP20 1AB",
    "Newport, South Wales",
    "I live in a small village near Hexham",
    "somewhere in the north, I'd rather not say",
]
WORDS = [
    "the",
    "and",
    "he",
    "she",
    "it",
    "was",
    "I",
    "my",
    "partner",
    "kids",
    "home",
    "work",
    "near",
    "town",
    "live",
    "there",
    "never",
    "always",
    "lost",
    "shouted",
    "angry",
    "sorry",
    "hit",
    "wife",
    "husband",
    "children",
    "son",
    "daughter",
    "help",
    "want",
    "talk",
    "today",
]


def long_messages() -> dict[str, str]:
    rng = random.Random(7)
    story = " ".join(rng.choice(WORDS) for _ in range(700))
    return {
        "1,000 chars, one word again": "word " * 200,
        "3,500 chars, a story": story,
        "4,000 chars, one long word again": "abcdefgh " * 440,
        "3,500 chars, a story, then a typo of a town": f"{story} Tauntn",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    pin(args.cpu)
    from helpline.directory import Directory

    directory = Directory.load(TREE / "content")
    results: dict[str, float] = {}
    answers = {f"short: {q}": q for q in SHORT} | long_messages()
    for name, text in answers.items():
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            directory.find_area(text)
            times.append(time.perf_counter() - t)
        results[name] = round(median(times) * 1000, 2)
    print(json.dumps({"tree": str(TREE), "median_ms": results}, indent=1))


if __name__ == "__main__":
    main()
