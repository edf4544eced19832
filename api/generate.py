"""Generate the committed Python code, and check that it has not drifted.

    .ci/codegen.sh           # regenerate api/ and tests/protos/ with the pinned generators
    .ci/codegen.sh --check   # regenerate into a temporary folder; fail on any difference

(`.ci/codegen.sh` runs `python -m taskgate.api.generate` in a virtual environment holding the
generator versions of requirements/codegen.txt; run from any other environment, this module
hands over to it, so `python -m api.generate [--check]` gives the same answer.) The generators
are pinned to protoc 6.31.1 (grpcio-tools 1.75.1): protobuf refuses gencode newer than its
runtime, so the code is generated for the oldest runtime taskgate supports and loads on every
newer one.

The .proto files keep their import names (`api/task.proto`: what reflection clients see), so
protoc writes `from api import ...`; those imports are rewritten to the installed package,
`taskgate.api`. google/api/*.proto come from the googleapis-common-protos wheel and the
well-known types from grpcio-tools; neither is copied into this repository.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import google.api.annotations_pb2  # the googleapis-common-protos wheel: google/api/*.proto
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
#: Folders whose .proto files are compiled, relative to ROOT.
PROTO_DIRS = ("api", "tests/protos")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
#: `from api import x_pb2` as protoc writes it (proto import names are relative to ROOT).
_PROTO_PACKAGE_IMPORT = re.compile(r"^from api import ", re.MULTILINE)


def _include_dirs() -> list[Path]:
    googleapis = Path(google.api.annotations_pb2.__file__).resolve().parent.parent.parent
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    return [ROOT, googleapis, well_known]


def proto_files() -> list[str]:
    """The .proto files to compile, as paths relative to ROOT (their import names)."""
    files: list[str] = []
    for folder in PROTO_DIRS:
        files += sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob("*.proto"))
    return files


def generated_files(root: Path) -> list[str]:
    """Every generated file under root's proto folders, relative to root."""
    found: list[str] = []
    for folder in PROTO_DIRS:
        for suffix in GENERATED_SUFFIXES:
            found += [p.relative_to(root).as_posix() for p in (root / folder).glob(f"*{suffix}")]
    return sorted(found)


def generate(out: Path) -> None:
    """Run protoc (python, grpc, mypy and mypy-grpc plugins) into out."""
    for folder in PROTO_DIRS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    args = ["grpc_tools.protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--python_out={out}", f"--grpc_python_out={out}"]
    args += [f"--mypy_out={out}", f"--mypy_grpc_out={out}"]
    args += proto_files()
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    for name in generated_files(out):
        path = out / name
        path.write_text(_PROTO_PACKAGE_IMPORT.sub("from taskgate.api import ", path.read_text()))


def check() -> list[str]:
    """Regenerate into a temporary folder; return the files that differ from the committed ones."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        expected = generated_files(fresh)
        actual = generated_files(ROOT)
        drift = sorted(set(expected) ^ set(actual))
        drift += [
            name
            for name in sorted(set(expected) & set(actual))
            if not filecmp.cmp(fresh / name, ROOT / name, shallow=False)
        ]
        return drift


def pinned_generator() -> str:
    """The grpcio-tools version requirements/codegen.txt pins."""
    for line in (ROOT / "requirements" / "codegen.txt").read_text().splitlines():
        name, sep, pinned = line.partition("==")
        if sep and name.strip() == "grpcio-tools":
            return pinned.strip()
    raise SystemExit("requirements/codegen.txt pins no grpcio-tools version")


def main(argv: Sequence[str] | None = None) -> int:
    if version("grpcio-tools") != pinned_generator():
        # Another protoc writes other code: run in the pinned generators' environment instead
        # (`python -m api.generate` and `python -m taskgate.api.generate` both land there).
        script = ROOT / ".ci" / "codegen.sh"
        args = list(sys.argv[1:] if argv is None else argv)
        os.execv("/bin/bash", ["bash", str(script), *args])  # noqa: S606 - our own script
    parser = argparse.ArgumentParser(
        prog="python -m taskgate.api.generate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    options = parser.parse_args(argv)
    if not options.check:
        generate(ROOT)
        print(f"generated code for {len(proto_files())} proto files")
        return 0
    drift = check()
    if drift:
        print("generated code is out of date; run `.ci/codegen.sh`:", file=sys.stderr)
        for name in drift:
            print(f"  {name}", file=sys.stderr)
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
