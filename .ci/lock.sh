#!/usr/bin/env bash
# Re-make the lock files from pyproject.toml's ranges (uv, from PyPI: `pip install uv`).
#   requirements/dev.lock     the newest versions the ranges allow: CI's main environment
#   requirements/lowest.lock  every direct dependency at its floor: proves the floors are real
# CI installs with PIP_CONSTRAINT=<lock>, so the README's own install command is what runs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || python3 -m pip install -q uv
common=(pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28
        --no-header --annotation-style line --quiet)
uv pip compile "${common[@]}" -o requirements/dev.lock "$@"
uv pip compile "${common[@]}" --resolution lowest-direct -o requirements/lowest.lock "$@"
echo "wrote requirements/dev.lock and requirements/lowest.lock"
