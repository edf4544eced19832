"""The event-loop client's wire pieces (gateway/h2wire.py), table by table; header blocks are
checked by decoding them with `hpack`, an independent HPACK implementation."""

from __future__ import annotations

import base64

import grpc
import hpack
import pytest

from taskgate.gateway import h2wire as w

C = grpc.StatusCode
Fields = list[tuple[bytes, bytes]]


@pytest.mark.parametrize(
    ("value", "prefix", "first", "encoded"),
    [
        (10, 5, 0, b"\x0a"),  # RFC 7541 C.1.1
        (1337, 5, 0, b"\x1f\x9a\x0a"),  # C.1.2
        (42, 8, 0, b"\x2a"),  # C.1.3
        (31, 5, 0, b"\x1f\x00"),  # exactly the prefix's limit takes a second byte
        (0, 5, 0x20, b"\x20"),  # a dynamic table size update to 0
        (4, 4, 0, b"\x04"),
    ],
)
def test_hpack_int(value: int, prefix: int, first: int, encoded: bytes) -> None:
    assert w.hpack_int(value, prefix, first) == encoded


def decoded(block: bytes) -> list[tuple[bytes, bytes]]:
    return [(bytes(k), bytes(v)) for k, v in hpack.Decoder().decode(block, raw=True)]


def test_request_prefix_decodes_to_a_grpc_request() -> None:
    block = w.TABLE_SIZE_ZERO + w.request_prefix(b"/pkg.S/M", b"host:1", b"ua/1")
    assert decoded(block) == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/pkg.S/M"),
        (b":authority", b"host:1"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-accept-encoding", b"identity"),
        (b"user-agent", b"ua/1"),
    ]


def test_long_values_take_multi_byte_lengths() -> None:
    value = b"v" * 300
    assert decoded(w.literal(b"x-long", value)) == [(b"x-long", value)]
    assert decoded(w.literal_static_name(4, value)) == [(b":path", value)]


def test_a_decoder_table_is_never_touched() -> None:
    decoder = hpack.Decoder()
    decoder.decode(w.request_prefix(b"/a/b", b"h:1", b"ua") + w.literal(b"k", b"v"), raw=True)
    assert len(decoder.header_table.dynamic_entries) == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1e-9, b"1n"),
        (0.0999, b"99900000n"),
        (0.1, b"100000u"),
        (1.5, b"1500000u"),
        (30.0, b"30000000u"),
        (100.0, b"100000m"),
        (99_999.0, b"99999000m"),
        (100_000.0, b"100000S"),
        (3600.0 * 24 * 365 * 10, b"5256000M"),
        (6_000_000_000.0, b"1666667H"),
        (3600.0 * 99_999_999, b"99999999H"),
        (1e30, w.MAX_TIMEOUT),
    ],
)
def test_grpc_timeout_is_the_finest_unit_in_8_digits(seconds: float, text: bytes) -> None:
    assert w.grpc_timeout(seconds) == text


def test_grpc_timeout_never_rounds_down() -> None:
    for seconds in (0.0012345, 1.0000001, 123.456789, 7777.7):
        text = w.grpc_timeout(seconds)
        nanos = dict(w._TIMEOUT_UNITS)[text[-1:]]
        assert int(text[:-1]) * nanos >= seconds * 1e9 * (1 - 1e-12)
        assert len(text) <= 9


@pytest.mark.parametrize(
    ("metadata", "fields"),
    [
        ((), []),
        ((("x-a", "1"), ("x-a", "2")), [(b"x-a", b"1"), (b"x-a", b"2")]),
        ((("k-bin", b"\x00\xff"),), [(b"k-bin", base64.b64encode(b"\x00\xff").rstrip(b"="))]),
        ((("traceparent", "00-ab-cd-01"),), [(b"traceparent", b"00-ab-cd-01")]),
    ],
)
def test_metadata_fields(metadata: tuple[tuple[str, str | bytes], ...], fields: Fields) -> None:
    block = w.metadata_fields(metadata)
    assert block is not None
    assert decoded(block) == fields


@pytest.mark.parametrize(
    "metadata",
    [
        (("X-Upper", "v"),),  # keys are lower case on the wire
        ((":path", "/x"),),  # a pseudo-header is not metadata
        (("", "v"),),
        (("ключ", "v"),),
        (("x-a", "line\nbreak"),),  # text values are printable ASCII
        (("x-a", "é"),),
        (("x-a", b"bytes"),),  # bytes only for -bin keys
        (("x-bin", "text"),),
    ],
)
def test_metadata_grpc_would_refuse_is_left_to_grpc(
    metadata: tuple[tuple[str, str | bytes], ...],
) -> None:
    assert w.metadata_fields(metadata) is None


def test_metadata_fields_are_remembered_but_not_request_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(w, "_FIELDS", {})
    metadata = (("x-forwarded-host", "h:1"), ("x-request-id", "r1"), ("x-a", "b"))
    first = w.metadata_fields(metadata)
    assert first is not None
    assert w._FIELDS.keys() == {("x-forwarded-host", "h:1"), ("x-a", "b")}
    assert w.metadata_fields(metadata) == first  # the same bytes, from memory
    assert decoded(first) == [
        (b"x-forwarded-host", b"h:1"),
        (b"x-request-id", b"r1"),
        (b"x-a", b"b"),
    ]
    # a refused entry is never remembered, so it is refused every time
    assert w.metadata_fields((("x-a", "b"), ("x-a", "line\nbreak"))) is None
    assert ("x-a", "line\nbreak") not in w._FIELDS
    assert w.metadata_fields((("x-a", "line\nbreak"),)) is None


def test_remembered_metadata_fields_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w, "_FIELDS", {})
    for i in range(w.MAX_REMEMBERED_FIELDS * 3):
        block = w.metadata_fields((("x-n", str(i)),))
        assert block is not None
        assert decoded(block) == [(b"x-n", str(i).encode())]
        assert len(w._FIELDS) <= w.MAX_REMEMBERED_FIELDS


def test_response_metadata_is_what_grpc_aio_gives() -> None:
    fields = [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-encoding", b"identity"),
        (b"x-a", b"1"),
        (b"x-b-bin", base64.b64encode(b"\x01\x02\x03").rstrip(b"=")),
        (b"x-c-bin", b"!!!"),  # not base64: dropped
        (b"grpc-status", b"0"),
        (b"grpc-message", b""),
        (b"grpc-status-details-bin", base64.b64encode(b"\x08\x05")),
    ]
    assert w.response_metadata(fields) == (
        ("x-a", "1"),
        ("x-b-bin", b"\x01\x02\x03"),
        ("grpc-status-details-bin", b"\x08\x05"),
    )


OK_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]


@pytest.mark.parametrize(
    ("headers", "trailers", "status"),
    [
        (OK_HEADERS, [(b"grpc-status", b"0")], (C.OK, "")),
        (
            OK_HEADERS,
            [(b"grpc-status", b"3"), (b"grpc-message", b"bad %22x%22%3A 100%25")],
            (C.INVALID_ARGUMENT, 'bad "x": 100%'),
        ),
        (
            OK_HEADERS,
            [(b"grpc-message", "ü".encode())],
            (C.UNKNOWN, "upstream sent no grpc-status"),
        ),
        (OK_HEADERS, [(b"grpc-status", b"x1")], (C.UNKNOWN, "upstream sent grpc-status b'x1'")),
        (OK_HEADERS, [(b"grpc-status", b"99")], (C.UNKNOWN, "upstream sent grpc-status b'99'")),
        (OK_HEADERS, [(b"grpc-status", b"5"), (b"grpc-message", b"%E2%9C%93")], (C.NOT_FOUND, "✓")),
        # trailers-only: the one block is both
        (None, [(b":status", b"200"), (b"grpc-status", b"14")], (C.UNAVAILABLE, "")),
        (
            None,
            [(b":status", b"503"), (b"content-type", b"text/plain")],
            (C.UNAVAILABLE, "Received http2 header with status: 503"),
        ),
        (None, [(b":status", b"404")], (C.UNIMPLEMENTED, "Received http2 header with status: 404")),
        (
            None,
            [(b":status", b"401")],
            (C.UNAUTHENTICATED, "Received http2 header with status: 401"),
        ),
        (None, [(b":status", b"418")], (C.UNKNOWN, "Received http2 header with status: 418")),
        (
            [(b":status", b"502")],
            [(b"grpc-status", b"0")],
            (C.UNAVAILABLE, "Received http2 header with status: 502"),
        ),
    ],
)
def test_call_status(headers: Fields | None, trailers: Fields, status: tuple[C, str]) -> None:
    assert w.call_status(headers, trailers) == status


@pytest.mark.parametrize(
    ("data", "limit", "result"),
    [
        (b"\x00\x00\x00\x00\x03abc", 10, b"abc"),
        (b"\x00\x00\x00\x00\x00", 10, b""),
        (b"", 10, (C.INTERNAL, "upstream sent no response message")),
        (b"\x00\x00\x00", 10, (C.INTERNAL, "upstream sent no response message")),
        (
            b"\x00\x00\x00\x00\x04abc",
            10,
            (C.INTERNAL, "upstream sent a malformed response message"),
        ),
        (b"\x00\x00\x00\x00\x01ab", 10, (C.INTERNAL, "upstream sent a malformed response message")),
        (
            b"\x01\x00\x00\x00\x03abc",
            10,
            (C.INTERNAL, "upstream sent a compressed message it was not asked for"),
        ),
        (
            b"\x00\x00\x00\x00\x0bhello world",
            10,
            (C.RESOURCE_EXHAUSTED, "Received message larger than max (11 vs. 10)"),
        ),
    ],
)
def test_unpack_message(data: bytes, limit: int, result: object) -> None:
    assert w.unpack_message(data, limit) == result


def test_settings_round_trip_and_bad_length() -> None:
    pairs = [(w.ENABLE_PUSH, 0), (w.INITIAL_WINDOW_SIZE, w.MAX_WINDOW)]
    assert w.parse_settings(w.settings_payload(pairs)) == pairs
    assert w.parse_settings(b"") == []
    assert w.parse_settings(b"\x00\x01\x00\x00\x10") is None


def test_frame_header() -> None:
    assert w.frame_header(5, w.DATA, w.END_STREAM, 3) == b"\x00\x00\x05\x00\x01\x00\x00\x00\x03"
    assert w.frame_header(2**24 - 1, w.GOAWAY, 0, 2**31 - 1)[:3] == b"\xff\xff\xff"
