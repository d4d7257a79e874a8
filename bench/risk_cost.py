"""Risk screening cost: microseconds per message over tests/risk_cases.yaml, in-process: each
message's median over --rounds calls once caches are warm, and the first pass (first sight of
every word) after the lexicon has loaded."""

from __future__ import annotations

import argparse
import json
import time

from bench.tree import isolate

TREE = isolate()

import yaml  # noqa: E402

from bench.server import pin  # noqa: E402
from bench.stats import median, percentile  # noqa: E402


def cases() -> list[tuple[str, str]]:
    data = yaml.safe_load((TREE / "tests" / "risk_cases.yaml").read_text(encoding="utf-8"))
    return [
        (text, lang)
        for by_lang in data.values()
        for lang, texts in by_lang.items()
        for text in texts
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    pin(args.cpu)
    from helpline.risk import assess

    messages = cases()
    assess("hello", "en")  # load the lexicon and compile its patterns once
    cold = []
    for text, lang in messages:  # first sight: the per-word caches are still empty
        t = time.perf_counter()
        assess(text, lang)
        cold.append(time.perf_counter() - t)
    per_message: list[float] = []
    for text, lang in messages:
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            assess(text, lang)
            times.append(time.perf_counter() - t)
        per_message.append(median(times) * 1e6)
    print(
        json.dumps(
            {
                "messages": len(messages),
                "median_us": median(per_message),
                "p99_us": percentile(per_message, 99),
                "mean_us": sum(per_message) / len(per_message),
                "cold_mean_us": sum(cold) / len(cold) * 1e6,
            }
        )
    )


if __name__ == "__main__":
    main()
