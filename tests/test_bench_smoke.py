"""One smoke test of the benchmarks: ``python -m bench --quick`` runs and writes every figure.

The figures themselves are not checked here: timing belongs to bench/, never to tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench._report import END, START, TARGETS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(280)  # the quick run takes 60 to 100 s here; its own limit is 300 s
def test_bench_quick_writes_every_name_and_the_docs_table(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    shutil.copy(ROOT / "docs" / "benchmarks.md", docs)
    out = tmp_path / "latest.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    missing = [name for name in TARGETS if name not in results]
    assert not missing
    assert all(isinstance(results[name], (int, float)) for name in TARGETS)
    for key in ("env_cpu_count", "env_python", "env_grpcio", "env_etcd"):
        assert key in results
    table = docs.read_text().split(START)[1].split(END)[0]
    for name in TARGETS:
        assert f"`{name}`" in table
    assert "not measured" not in table
