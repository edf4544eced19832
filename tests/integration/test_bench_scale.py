"""`python -m bench.scale` runs end to end at a tiny size and writes its section (a benchmark:
nothing here looks at the times)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import private_temp_dir

REPO = Path(__file__).resolve().parents[2]


def test_bench_scale_runs_with_a_tiny_configuration(server_url: str) -> None:
    with private_temp_dir("taskgate-bench-scale-") as directory:
        results = directory / "RESULTS.md"
        results.write_text("# Benchmark results\n\nearlier sections\n", encoding="utf-8")
        argv = [sys.executable, "-m", "bench.scale", "--database-url", server_url]
        argv += ["--rows", "2000", "--small-rows", "200", "--calls", "20"]
        argv += ["--explain", "--results", str(results)]

        runs = [
            subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
            for _ in range(2)  # the second run replaces the section, it does not add another
        ]
        for done in runs:
            assert done.returncode == 0, done.stderr
        text = results.read_text(encoding="utf-8")

    assert text.startswith("# Benchmark results\n\nearlier sections\n")
    assert text.count("<!-- bench.scale: begin -->") == 1
    for call in ("driver lookup", "first page", "deep page", "namespace page", "create x32"):
        assert f"| {call} |" in text
    assert "EXPLAIN ANALYZE at 2,000 rows: first page" in runs[-1].stdout
    assert "seeded 2,000 rows" in runs[-1].stderr
