#!/usr/bin/env bash
# Run every benchmark once, one after another (never in CI): REST, gRPC, pgbench.
# Output: bench/results/raw/run_all-<time>.md (the three reports), plus each script's JSON.
# Takes ~10 minutes with the defaults (two repetitions of every key run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p bench/results/raw
out="bench/results/raw/run_all-$(date -u +%Y%m%dT%H%M%S).md"
{
  echo "# run_all $(date -u)"
  echo "nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo); kernel $(uname -r); $(python --version)"
  echo "loadavg at start: $(cat /proc/loadavg)"
  echo; echo "## REST (bench/rest.py --profile)"; python bench/rest.py --profile "$@"
  echo; echo "## gRPC (bench/grpc_load.py suite)"; python bench/grpc_load.py suite
  echo; echo "## pgbench (bench/pgbench.py)"; python bench/pgbench.py
  echo; echo "loadavg at end: $(cat /proc/loadavg)"
} | tee "$out"
echo "report: $out" >&2
