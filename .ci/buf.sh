#!/usr/bin/env bash
# buf lint and buf breaking on api/, offline: buf from npm, google/api/*.proto from the
# googleapis-common-protos wheel, and the committed baseline image api/buf-baseline.binpb
# (the wire contract: the KFP seed plus the V1 aliases).
#   .ci/buf.sh                 lint + breaking
#   .ci/buf.sh --new-baseline  rewrite the baseline (only for a deliberate, compatible change)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x build/buf/node_modules/.bin/buf ]]; then
  mkdir -p build/buf
  (cd build/buf && timeout 300 npm install --silent --no-audit --no-fund @bufbuild/buf@1.75.0 >/dev/null)
fi
BUF=build/buf/node_modules/.bin/buf
site=$(python3 -c 'import google.api.annotations_pb2 as a, pathlib; print(pathlib.Path(a.__file__).parent)')
mkdir -p build/proto-deps/google/api
cp "$site"/annotations.proto "$site"/http.proto build/proto-deps/google/api/
if [[ "${1:-}" == "--new-baseline" ]]; then
  "$BUF" build --path api -o api/buf-baseline.binpb
  echo "wrote api/buf-baseline.binpb"
  exit 0
fi
"$BUF" lint --path api
"$BUF" breaking --path api --against api/buf-baseline.binpb
echo "buf lint and buf breaking: ok"
