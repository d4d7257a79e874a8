""".ci/services, which `make test` runs: it starts the Redis and PostgreSQL installed on the
machine, whichever PostgreSQL versions are installed, and says plainly what it cannot do.
Run here against stand-in commands that record how they were called."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CLUSTERS = """\
13  main    5433 down   postgres /var/lib/postgresql/13/main /var/log/postgresql/13.log
16  main    5432 down   postgres /var/lib/postgresql/16/main /var/log/postgresql/16.log
"""


def stand_ins(bin_dir: Path, calls: Path, uid: int) -> None:
    """Redis answers; PostgreSQL answers once pg_ctlcluster has started it."""
    scripts = {
        "redis-cli": "exit 0",
        "id": f'[ "$1" = -u ] && echo {uid}',
        "pg_lsclusters": f"cat <<'END'\n{CLUSTERS}END",
        "pg_isready": f'[ -e "{calls}.started" ]',
        "pg_ctlcluster": f'echo "pg_ctlcluster $*" >> "{calls}"; touch "{calls}.started"',
    }
    bin_dir.mkdir()
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)


def services(tmp_path: Path, uid: int) -> tuple[subprocess.CompletedProcess[str], str]:
    calls = tmp_path / "calls"
    stand_ins(tmp_path / "bin", calls, uid)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    result = subprocess.run(  # noqa: S603 - our own script
        ["bash", str(ROOT / ".ci" / "services")],  # noqa: S607
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, calls.read_text() if calls.exists() else ""


def test_services_start_the_postgresql_cluster_the_tests_use_among_several_versions(
    tmp_path: Path,
) -> None:
    result, calls = services(tmp_path, uid=0)
    assert result.returncode == 0, result.stderr
    assert calls.split("\n")[0].split()[-3:] == ["16", "main", "start"]


def test_services_say_what_to_do_when_postgresql_is_stopped_and_they_are_not_root(
    tmp_path: Path,
) -> None:
    result, calls = services(tmp_path, uid=1000)
    assert result.returncode != 0
    assert calls == ""
    assert "sudo" in result.stderr
    assert "16" in result.stderr
