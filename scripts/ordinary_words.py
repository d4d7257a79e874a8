"""Write content/directory/ordinary_words.yaml: the ordinary words that the directory would
otherwise take for a typo of a place ("near" for Newark, "baby" for Blaby, "hurts" for Herts).

A word on that list is never matched loosely to a place, as a whole answer or inside a sentence;
a place named as it is spelt is still found ("Bath", "Reading"). Words listed under still_typos
in areas.yaml are left out ("crew" is still Crewe). Run it again after adding towns or councils
to areas.yaml, or Welsh to content/ (`make test` fails while the file is out of date), and
commit the file it writes:

    .venv/bin/python scripts/ordinary_words.py [--dict PATH] [--check]

The English words come from a word list (Debian's wbritish package: /usr/share/dict/
british-english), the Welsh from every Welsh text and keyword in content/ (our own words,
so "rhywle" and "derbyn" are not taken for places either). `--check` only says whether the
file is up to date (exit 1 if not).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpline.directory import Directory, still_typos  # noqa: E402
from helpline.yamlfile import read_yaml  # noqa: E402

CONTENT = ROOT / "content"
OUT = CONTENT / "directory" / "ordinary_words.yaml"
DEFAULT_DICT = Path("/usr/share/dict/british-english")
HEADER = """\
# Ordinary words a letter or two from a place's name: never taken for a typo of one, as a whole
# answer to "where are you?" or inside a sentence ("near" is not Newark, "baby" not Blaby,
# "hurts" not Herts). A place spelt as it is named is still found ("Bath", "Reading"); a real
# typo that happens to be a word ("leads") is asked again instead of guessed.
# Written by scripts/ordinary_words.py from a British English word list and the Welsh of
# content/; run it again after adding places to areas.yaml or Welsh to content/. Do not edit
# by hand: words to keep as typos of a place go under still_typos in areas.yaml.
"""
# Words YAML would read as something other than a string.
_YAML_WORDS = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")


def _strings(data: Any, welsh: bool = False) -> Iterator[str]:
    """The Welsh strings in a content file (every string under a `cy` key)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, welsh or key == "cy")
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item, welsh)
    elif isinstance(data, str) and welsh:
        yield data


def candidates(word_list: Path) -> set[str]:
    words = {
        w.replace("'", "")
        for w in word_list.read_text(encoding="utf-8").split()
        if w.islower() and not w.endswith("'s")
    }
    for path in sorted(CONTENT.rglob("*.yaml")):
        if path.relative_to(CONTENT).parts[0] == "directory":
            continue
        for text in _strings(read_yaml(path, str(path.relative_to(CONTENT)))):
            for m in _WORD.finditer(text):
                words.add(m.group(0).lower().replace("'", "").replace("\u2019", ""))
    return {w for w in words if len(w) >= 4 and w.isalpha()}


def ordinary_words(word_list: Path) -> list[str]:
    directory = dataclasses.replace(Directory.load(CONTENT), _ordinary=frozenset())
    kept = still_typos(read_yaml(CONTENT / "directory" / "areas.yaml", "directory/areas.yaml"))
    found = []
    for word in sorted(candidates(word_list) - kept):
        if directory.names_exactly(word):
            continue
        if directory.find_area(word) is not None:
            found.append(word)
    return found


def render(words: list[str]) -> str:
    lines, line = [], "  "
    for word in words:
        item = f'"{word}", ' if word in _YAML_WORDS else f"{word}, "
        if len(line) + len(item) > 99:
            lines.append(line.rstrip())
            line = "  "
        line += item
    lines.append(line.rstrip().rstrip(","))
    return HEADER + "words: [\n" + "\n".join(lines) + "\n]\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dict", type=Path, default=DEFAULT_DICT, help="a word list, one a line")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args()
    if not args.dict.exists():
        print(f"{args.dict}: no word list (Debian: apt-get install wbritish)", file=sys.stderr)
        return 2
    text = render(ordinary_words(args.dict))
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.relative_to(ROOT)} is {'up to date' if same else 'out of date'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {len(text.splitlines()) - 8} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
