"""load_descriptor_set: FileDescriptorSet files as written by protoc --descriptor_set_out."""

from __future__ import annotations

from pathlib import Path

import grpc_tools  # type: ignore[import-untyped, unused-ignore]
import pytest
from google.api import annotations_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_tools import protoc  # type: ignore[import-untyped, unused-ignore]

from taskgate.gateway.discovery import DiscoveryError, load_descriptor_set
from taskgate.gateway.http_rules import http_rule_for
from tests.protos import transcoding_test_pb2

ROOT = Path(__file__).resolve().parents[3]
FIXTURE_PROTO = "tests/protos/transcoding_test.proto"


def write_descriptor_set(out: Path, *, include_imports: bool = True) -> Path:
    googleapis = Path(annotations_pb2.__file__).resolve().parents[2]
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{ROOT}", f"-I{googleapis}", f"-I{well_known}"]
    args += [f"--descriptor_set_out={out}", FIXTURE_PROTO]
    if include_imports:
        args.append("--include_imports")
    assert protoc.main(args) == 0
    return out


def test_loads_every_service_into_a_fresh_pool(tmp_path: Path) -> None:
    found = load_descriptor_set(write_descriptor_set(tmp_path / "set.pb"))

    assert [s.full_name for s in found.services] == ["tgtest.Library", "tgtest.Echo"]
    assert found.pool is not descriptor_pool.Default()
    assert found.pool.FindMessageTypeByName("google.api.HttpBody").name == "HttpBody"


def test_http_rule_survives_in_the_method_options(tmp_path: Path) -> None:
    found = load_descriptor_set(write_descriptor_set(tmp_path / "set.pb"))
    rule = http_rule_for(found.pool.FindMethodByName("tgtest.Library.ListBooks"))

    assert rule is not None
    assert rule.get == "/v1/{parent=shelves/*}/books"
    assert [b.get for b in rule.additional_bindings] == ["/v1/books"]


def test_missing_imports_come_from_the_default_pool(tmp_path: Path) -> None:
    path = write_descriptor_set(tmp_path / "set.pb", include_imports=False)
    assert len(descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file) == 1

    found = load_descriptor_set(path)

    # The default pool knows the imports because the generated module is loaded.
    assert transcoding_test_pb2.DESCRIPTOR.name == FIXTURE_PROTO
    assert found.pool.FindMessageTypeByName("google.protobuf.Timestamp").name == "Timestamp"


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.pb"
    with pytest.raises(DiscoveryError, match=r"cannot read descriptor set .*nothing\.pb"):
        load_descriptor_set(missing)


def test_garbage_file_is_not_a_descriptor_set(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\x0a\x05ab")
    with pytest.raises(DiscoveryError, match="is not a serialized FileDescriptorSet"):
        load_descriptor_set(garbage)


def test_unknown_dependency_is_reported(tmp_path: Path) -> None:
    lonely = descriptor_pb2.FileDescriptorProto(
        name="lonely.proto", package="lonely", dependency=["nowhere/missing.proto"]
    )
    path = tmp_path / "lonely.pb"
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=[lonely]).SerializeToString())
    with pytest.raises(DiscoveryError, match=r"nowhere/missing\.proto"):
        load_descriptor_set(path)
