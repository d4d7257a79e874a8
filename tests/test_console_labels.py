"""Every code the console shows staff (a risk reason, a role, a channel) has words in English
and Welsh, and reaches the page: a new reason cannot be added without them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from handoff.accounts import ROLES
from helpline.content import DEFAULT_ROOT

CONSOLE_HTML = Path(__file__).parent.parent / "handoff" / "static" / "console.html"
REASONS = sorted(yaml.safe_load((DEFAULT_ROOT / "risk" / "reasons.yaml").read_text()))
MESSAGES = yaml.safe_load((DEFAULT_ROOT / "messages" / "console.yaml").read_text())
CODES = (
    [("reason", r, f"reason.{r}") for r in REASONS]
    + [("role", r, f"role.{r}") for r in ROLES]
    + [("channel", c, f"channel_name.{c}") for c in ("web", "sms", "whatsapp", "telegram")]
)


@pytest.mark.parametrize(("kind", "code", "key"), CODES)
def test_every_code_shown_to_staff_has_words_in_both_languages(
    kind: str, code: str, key: str
) -> None:
    words = MESSAGES.get(f"console.{key}")
    assert words and words.get("en") and words.get("cy"), f"console.{key} is missing"
    attribute = f'data-label-{kind}-{code}="{{{{console.{key}}}}}"'
    assert attribute in CONSOLE_HTML.read_text(), f"{attribute} is not in console.html"


def test_the_reasons_are_read_from_the_risk_screen() -> None:
    assert "suicidal_thoughts" in REASONS and "child_harmed" in REASONS
