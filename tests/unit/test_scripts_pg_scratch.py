"""scripts/pg_scratch.sh: the throwaway PostgreSQL cluster of the tests and benchmarks."""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/initdb"), reason="PostgreSQL is not installed"
)
def test_a_cluster_that_cannot_be_made_says_why(tmp_path: Path) -> None:
    """initdb's own words went to a log file alone: the script failed without a line, and
    the tests then skipped every PostgreSQL run saying "no PostgreSQL for the tests: "."""
    scratch = tmp_path / "pg"
    (scratch / "data").mkdir(parents=True)
    (scratch / "data" / "left-by-an-earlier-run").touch()
    started = subprocess.run(
        ["bash", "scripts/pg_scratch.sh", "start", str(scratch)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert started.stdout == ""  # no URL of a server that is not there
    assert "initdb: error:" in started.stderr
