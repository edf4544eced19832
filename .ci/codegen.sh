#!/usr/bin/env bash
# Generate api/ and tests/protos/ code with the pinned generators (requirements/codegen.txt),
# in a virtual environment of their own so the development environment keeps the newest
# protobuf.   .ci/codegen.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=build/codegen
if [[ ! -x $venv/bin/python ]] || ! cmp -s requirements/codegen.txt $venv/codegen.txt; then
  python3 -m venv --clear $venv
  $venv/bin/python -m pip install -q --disable-pip-version-check -r requirements/codegen.txt
  cp requirements/codegen.txt $venv/codegen.txt
fi
exec $venv/bin/python -m taskgate.api.generate "$@"
