"""Settings an operator can get wrong without noticing: each is refused with one line naming
it, or warned about once at start, without an address or a password in the warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from helpline.config import Settings
from helpline.proxy import warn_if_unproxied
from tests.support import SECRET


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- behind a proxy without HELPLINE_TRUSTED_PROXIES ------------------------------------------


def test_a_public_url_without_trusted_proxies_warns_once_that_limits_are_shared(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET, public_url="https://help.example.org")
    with caplog.at_level(logging.WARNING):
        warn_if_unproxied(settings)
    [warning] = warnings_in(caplog)
    assert "HELPLINE_TRUSTED_PROXIES" in warning
    assert "new web chats" in warning
    assert "help.example.org" not in warning


@pytest.mark.parametrize(
    "given",
    [{}, {"public_url": "https://help.example.org", "trusted_proxies": "127.0.0.1"}],
)
def test_no_proxy_warning_without_a_public_url_or_with_trusted_proxies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, given: dict[str, str]
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SECRET, **given)
    with caplog.at_level(logging.WARNING):
        warn_if_unproxied(settings)
    assert warnings_in(caplog) == []
