"""`python -m bench --tiny` runs end to end and writes its section of RESULTS.md (a benchmark:
nothing here looks at the times). The tiny mode needs nothing but Python: no wrk, no Go peer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import private_temp_dir

REPO = Path(__file__).resolve().parents[2]
STALE = "<!-- bench: begin -->\nstale figures\n<!-- bench: end -->\n"
SCALE_SECTION = "<!-- bench.scale: begin -->\nscale figures\n<!-- bench.scale: end -->\n"


def test_bench_runs_the_whole_table_in_its_tiny_mode(server_url: str) -> None:
    with private_temp_dir("taskgate-bench-tiny-") as directory:
        results = directory / "RESULTS.md"
        results.write_text(
            f"# Benchmark results\n\nearlier\n\n{STALE}\n{SCALE_SECTION}", encoding="utf-8"
        )
        argv = [sys.executable, "-m", "bench", "--tiny", "--database-url", server_url]
        argv += ["--results", str(results)]
        done = subprocess.run(
            argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        text = results.read_text(encoding="utf-8")

    # the stale section is replaced in place; the others are kept
    assert text.startswith("# Benchmark results\n\nearlier\n\n<!-- bench: begin -->\n")
    assert text.endswith(f"<!-- bench: end -->\n\n{SCALE_SECTION}")
    assert "stale figures" not in text
    assert text.count("<!-- bench: begin -->") == 1
    assert text.count("<!-- bench: end -->") == 1
    for row in (
        "| REST CreateTask / Go peer, req/s |",
        "| REST ListTasks (page of 10) / Go peer, req/s |",
        "| REST driver lookup / Go peer, req/s |",
        "| REST CreateTask / no-op aiohttp, req/s |",
        "| gRPC CreateTask / no-op grpc.aio, calls/s |",
        "| gRPC ListTasks / no-op grpc.aio, calls/s |",
        "| `--workers 2` / `--workers 1`, REST ListTasks req/s |",
        "| RSS across the soak |",
    ):
        assert row in text
    # every measured run answered without errors, on both doors, against taskgate and the no-ops
    runs_table = text.split("<summary>Every run</summary>", 1)[1]
    measured = [line for line in runs_table.splitlines() if line.startswith("| 1 |")]
    assert len(measured) == 9
    assert all(line.split("|")[6].strip() == "0" for line in measured)
    assert "| REST CreateTask / no-op aiohttp, req/s |" in done.stdout
