"""The hostile-input corpus: one row per request, with the status every REST door must answer.

Each case is (method, target, headers, body, expected HTTP status) — or raw bytes written to a
socket for malformed HTTP. `taskgate serve`'s REST door and `taskgate gateway --preset kfp` in
front of serve's gRPC port must both answer every case with the expected status and never a 5xx
(except 503/504 for an upstream's fault, which no case here provokes). GRPC_CASES run the same
kind of input through the gRPC door, as raw request bytes.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import quote

from taskgate.api import task_pb2

TASKS = "/apis/v1alpha1/tasks"
LIMIT = 4 * 1024 * 1024  # --max-message-bytes' default

GOOD_TASK = {
    "pipelineName": "pipeline/p1",
    "runId": "run-1",
    "mlmdExecutionID": "7",
    "fingerprint": "fp",
    "created_at": "2024-05-06T10:00:00Z",
}


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    target: str
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: raw bytes for a socket instead of an HTTP client request (malformed HTTP).
    raw: bytes | None = None


def task_body(**changes: object) -> bytes:
    task: dict[str, object] = dict(GOOD_TASK)
    for key, value in changes.items():
        if value is None:
            task.pop(key, None)
        else:
            task[key] = value
    return json.dumps(task).encode()


def ts_filter(value: object, key: str = "created_at", name: str = "timestamp_value") -> str:
    return json.dumps({"predicates": [{"op": "GREATER_THAN", "key": key, name: value}]})


# Decision C14: strict RFC 3339. Each is refused on every text path.
BAD_TIMESTAMPS = [
    "2024-05-06T10:00:00+99:99",
    "2024-05-06T10:00:00+24:00",
    "2024-05-06T10:00:00-00:60",
    "２０２４-05-06T10:00:00Z",
    "2024-０5-06T10:00:00Z",
    "2024-05-06T10:00:0٣Z",
    "2024-05-06T10:00:13.Z",
    "2024-05-06T10:00:13.1234567890Z",
    "2024-05-06 10:00:00Z",
    "2024-05-06t10:00:00Z",
    "2024-05-06T10:00:00z",
    "2024-05-06T10:00:00",
    "2024-05-06",
    "2024-05-06T10:00Z",
    "2024-5-6T10:00:00Z",
    "24-05-06T10:00:00Z",
    "2024-13-06T10:00:00Z",
    "2024-00-06T10:00:00Z",
    "2024-02-30T10:00:00Z",
    "2023-02-29T10:00:00Z",
    "2024-05-00T10:00:00Z",
    "2024-05-06T24:00:00Z",
    "2024-05-06T10:60:00Z",
    "2024-05-06T10:00:60Z",
    "2024-05-06T10:00:00+0100",
    "2024-05-06T10:00:00+01",
    "2024-05-06T10:00:00 +01:00",
    " 2024-05-06T10:00:00Z",
    "2024-05-06T10:00:00Z ",
    "2024-05-06T10:00:00Z\n",
    "2024-05-06T10:00:00ZZ",
    "+2024-05-06T10:00:00Z",
    "1714989600",
    "",
    "now",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "2024-05-06T10:00:00.-1Z",
    "2024-05-06T10:00:00,5Z",
    "2024-05-06T10:00:00\x00Z",
]
GOOD_TIMESTAMPS = [
    "2024-05-06T10:00:00Z",
    "2024-05-06T10:00:00.1Z",
    "2024-05-06T10:00:00.123456789Z",
    "2024-05-06T10:00:00+01:00",
    "2024-05-06T10:00:00-23:59",
    "2024-02-29T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
]


@cache
def gzip_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB (1024 members of 1 MiB of zeros)."""
    member = gzip.compress(bytes(1 << 20), compresslevel=9)
    return member * 1024


@cache
def single_member_bomb() -> bytes:
    """One gzip stream of 32 MiB of zeros (about 32 KB)."""
    return gzip.compress(bytes(32 << 20), compresslevel=1)


def _cases() -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    post = {"Content-Type": "application/json"}

    for ts in BAD_TIMESTAMPS:
        add(Case(f"body created_at {ts!r}", "POST", TASKS, 400, task_body(created_at=ts), post))
        add(Case(f"filter {ts!r}", "GET", f"{TASKS}?filter={quote(ts_filter(ts))}", 400))
    for ts in BAD_TIMESTAMPS[:12]:
        body = task_body(finished_at=ts)
        add(Case(f"body finished_at {ts!r}", "POST", TASKS, 400, body, post))
        camel = task_body(created_at=None, createdAt=ts)
        add(Case(f"body createdAt {ts!r}", "POST", TASKS, 400, camel, post))
        target = f"{TASKS}?filter={quote(ts_filter(ts, name='timestampValue'))}"
        add(Case(f"filter timestampValue {ts!r}", "GET", target, 400))
    for ts in GOOD_TIMESTAMPS:
        add(Case(f"body good {ts!r}", "POST", TASKS, 200, task_body(created_at=ts), post))
        add(Case(f"filter good {ts!r}", "GET", f"{TASKS}?filter={quote(ts_filter(ts))}", 200))

    # JSON bodies.
    bad_json = [
        b"{",
        b'{"pipelineName": }',
        b"[]",
        b'"a string"',
        b"42",
        b"true",
        b'{"runId": NaN}',
        b'{"runId": Infinity}',
        b"\xff\xfe{}",
        b'{"runId": "\xc3\x28"}',
        b"[" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"runId": 5}',
        b'{"runId": ["a"]}',
        b'{"runId": {"a": 1}}',
        b'{"created_at": 17}',
        b'{"created_at": {"seconds": 1}}',
        b'{"created_at": null, "runId": null}',
        b'{"pipelineName": "p", "pipelineName": "q"}',
        b"\x00\x00\x00",
        b'{"id": "x", "pipelineName": "p"}',
        b"{}",
        b"",
        b"null",
        b"   ",
        b'{"mlmdExecutionID": 1e400}',
    ]
    for i, body in enumerate(bad_json):
        add(Case(f"json #{i} {body[:20]!r}", "POST", TASKS, 400, body, post))
    long = "x" * 256
    for name in ("pipelineName", "runId", "mlmdExecutionID", "fingerprint", "namespace"):
        add(Case(f"{name} too long", "POST", TASKS, 400, task_body(**{name: long}), post))
        add(Case(f"{name} NUL", "POST", TASKS, 400, task_body(**{name: "a\x00b"}), post))
        add(Case(f"{name} unicode", "POST", TASKS, 200, task_body(**{name: "ß☃𝄞"}), post))
    add(Case("unknown field ignored", "POST", TASKS, 200, task_body(surprise=1), post))
    add(Case("namespaced bad", "POST", TASKS, 400, task_body(pipelineName="namespace/x"), post))

    # Query parameters.
    for value in ("abc", "-1", "1.5", "99999999999999999999", "0x", "%00", "1e3", "--1", "+"):
        add(Case(f"page_size {value!r}", "GET", f"{TASKS}?page_size={value}", 400))
    for value in ("0x10", "010", "1_0", "0", "200", "201", "2147483647"):
        add(Case(f"page_size ok {value!r}", "GET", f"{TASKS}?page_size={value}", 200))
    for value in ("bogus", "created_at sideways", "a b c", "%20", "id%00", "créé"):
        add(Case(f"sort_by {value!r}", "GET", f"{TASKS}?sort_by={quote(value)}", 400))
    for value in ("garbage", "A" * 5000, "%ff%fe", "eyJ9", "..", "=" * 10, "\u2603"):
        target = f"{TASKS}?page_token={quote(value)}"
        add(Case(f"page_token {value[:20]!r}", "GET", target, 400))
    add(Case("reference type", "GET", f"{TASKS}?resource_reference_key.type=BOGUS", 400))
    add(Case("reference id", "GET", f"{TASKS}?resource_reference_key.id=%ff", 400))
    for query in ("page_size=%zz", "filter=%", "sort_by=%GG", "page_size=1&page_size=2"):
        add(Case(f"query {query!r}", "GET", f"{TASKS}?{query}", 400))
    for query in (
        "%",
        "%zz",
        "a=%",
        "&&&",
        "=x",
        "x" * 10_000,
        "resource_reference_key.type=NAMESPACE",
    ):
        add(Case(f"query ignored {query[:20]!r}", "GET", f"{TASKS}?{query}", 200))

    # Filters.
    bad_filters = [
        "{",
        "[]",
        '"x"',
        "1",
        '{"predicates": 5}',
        '{"predicates": [5]}',
        '{"predicates": [{"op": "EQUALS", "key": "nope", "string_value": "x"}]}',
        '{"predicates": [{"op": "NOPE", "key": "runId", "string_value": "x"}]}',
        '{"predicates": [{"op": 99, "key": "runId", "string_value": "x"}]}',
        '{"predicates": [{"op": "IN", "key": "runId", "string_value": "x"}]}',
        '{"predicates": [{"op": "EQUALS", "key": "runId", "string_values": {"values": ["a"]}}]}',
        '{"predicates": [{"op": "EQUALS", "key": "runId", "int_value": 5}]}',
        '{"predicates": [{"op": "EQUALS", "key": "created_at", "string_value": "x"}]}',
        '{"predicates": [{"op": "EQUALS", "key": "runId", "string_value": "a\\u0000"}]}',
        '{"predicates": [{"op": "EQUALS", "key": "created_at", "long_value": "x"}]}',
        '{"surprise": 1}',
        '{"predicates": [{"op": "EQUALS"}]}',
        '{"predicates": [{"key": "runId", "string_value": "x"}]}',
        "[" * 10_000,
        '{"predicates": [{"op": "EQUALS", "key": "created_at", "timestamp_value": 5}]}',
        '{"predicates": [{"op": "EQUALS", "key": "created_at", "int_value": 1e99}]}',
    ]
    for i, text in enumerate(bad_filters):
        add(Case(f"filter #{i} {text[:30]!r}", "GET", f"{TASKS}?filter={quote(text)}", 400))
    for text in ("", "null", "{}", '{"predicates": []}'):
        add(Case(f"filter ok {text!r}", "GET", f"{TASKS}?filter={quote(text)}", 200))

    # Routing.
    for path in (
        "/",
        "/apis",
        "/apis/v1alpha1",
        "/apis/v1alpha1/tasks/x",
        "/apis/v1alpha1/tasks%00",
        "/apis/v1alpha1//tasks",
        "/APIS/V1ALPHA1/TASKS",
        "/" + "a/" * 2000,
        "/apis/v1alpha1/tasks/%ff",
        "/\u2603",
        "/healthz/x",
    ):
        add(Case(f"path {path[:30]!r}", "GET", path, 404))
    for method in ("PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"):
        add(Case(f"method {method}", method, TASKS, 405))
    add(Case("trailing slash", "GET", TASKS + "/", 200))

    # Headers.
    for value in ("abc", "1", "123456789S", "-1S", "1X", "1.5S", "S"):
        add(Case(f"Grpc-Timeout {value!r}", "GET", TASKS, 400, headers={"Grpc-Timeout": value}))
    add(Case("Grpc-Timeout 1n", "GET", TASKS, 504, headers={"Grpc-Timeout": "1n"}))
    for value in ("!!!", "a", "ab=c"):
        headers = {"Grpc-Metadata-X-Bin": value}
        add(Case(f"metadata-bin {value!r}", "GET", TASKS, 400, headers=headers))
    add(Case("many headers", "GET", TASKS, 200, headers={f"X-H{i}": "v" for i in range(100)}))

    # Sizes and content codings (P2).
    gz = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    add(Case("gzip ok", "POST", TASKS, 200, gzip.compress(task_body()), gz))
    add(
        Case(
            "x-gzip ok",
            "POST",
            TASKS,
            200,
            gzip.compress(task_body()),
            gz | {"Content-Encoding": "x-gzip"},
        )
    )
    add(
        Case(
            "GZIP ok",
            "POST",
            TASKS,
            200,
            gzip.compress(task_body()),
            gz | {"Content-Encoding": "GZIP"},
        )
    )
    add(
        Case(
            "deflate ok",
            "POST",
            TASKS,
            200,
            zlib.compress(task_body()),
            gz | {"Content-Encoding": "deflate"},
        )
    )
    add(Case("identity ok", "POST", TASKS, 200, task_body(), gz | {"Content-Encoding": "identity"}))
    add(
        Case(
            "two members ok",
            "POST",
            TASKS,
            200,
            gzip.compress(task_body()[:10]) + gzip.compress(task_body()[10:]),
            gz,
        )
    )
    add(Case("gzip bomb", "POST", TASKS, 413, gzip_bomb(), gz))
    add(Case("single-member bomb", "POST", TASKS, 413, single_member_bomb(), gz))
    add(
        Case(
            "deflate bomb",
            "POST",
            TASKS,
            413,
            zlib.compress(bytes(8 << 20), 1),
            gz | {"Content-Encoding": "deflate"},
        )
    )
    add(Case("gzip not gzip", "POST", TASKS, 400, b"not gzip at all", gz))
    add(Case("gzip truncated", "POST", TASKS, 400, gzip.compress(task_body())[:-12], gz))
    add(Case("gzip trailing junk", "POST", TASKS, 400, gzip.compress(task_body()) + b"junk", gz))
    add(
        Case(
            "deflate trailing junk",
            "POST",
            TASKS,
            400,
            zlib.compress(task_body()) + b"junk",
            gz | {"Content-Encoding": "deflate"},
        )
    )
    add(Case("gzip of bad JSON", "POST", TASKS, 400, gzip.compress(b"{"), gz))
    for coding in ("br", "zstd", "compress", "gzip, gzip", "gzip, br", "bogus"):
        add(
            Case(
                f"coding {coding!r}",
                "POST",
                TASKS,
                415,
                task_body(),
                gz | {"Content-Encoding": coding},
            )
        )
    add(Case("body one over", "POST", TASKS, 413, b" " * (LIMIT + 1), post))
    add(
        Case(
            "body at the limit",
            "POST",
            TASKS,
            200,
            task_body() + b" " * (LIMIT - len(task_body())),
            post,
        )
    )
    add(Case("gzip inflates one over", "POST", TASKS, 413, gzip.compress(b" " * (LIMIT + 1)), gz))

    # Malformed HTTP (aiohttp's parser answers 400 before any handler runs).
    for raw in (
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n",
        b"POST /apis/v1alpha1/tasks HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /apis/v1alpha1/tasks HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST /apis/v1alpha1/tasks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /apis/v1alpha1/tasks HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"FOO /apis/v1alpha1/tasks HTTP/1.1\r\n\r\n",
    ):
        add(Case(f"raw {raw[:24]!r}", "RAW", "", 400, raw=raw))
    return cases


CASES = _cases()


@dataclass(frozen=True)
class GrpcCase:
    label: str
    method: str
    request: bytes
    code: str


def _grpc_cases() -> list[GrpcCase]:
    cases: list[GrpcCase] = []
    create, list_tasks = "/api.TaskService/CreateTask", "/api.TaskService/ListTasks"
    garbage = [b"\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05abc", b"\x80", b"\x0b", b"\xff" * 64]
    for i, raw in enumerate(garbage):
        cases.append(GrpcCase(f"garbage #{i} CreateTask", create, raw, "INVALID_ARGUMENT"))
        cases.append(GrpcCase(f"garbage #{i} ListTasks", list_tasks, raw, "INVALID_ARGUMENT"))
    for ts in BAD_TIMESTAMPS:
        request = task_pb2.ListTasksRequest(filter=ts_filter(ts)).SerializeToString()
        cases.append(GrpcCase(f"filter {ts!r}", list_tasks, request, "INVALID_ARGUMENT"))
    for ts in GOOD_TIMESTAMPS:
        request = task_pb2.ListTasksRequest(filter=ts_filter(ts)).SerializeToString()
        cases.append(GrpcCase(f"filter good {ts!r}", list_tasks, request, "OK"))
    huge = task_pb2.CreateTaskRequest(task=task_pb2.Task(runId="x" * (LIMIT + 1)))
    cases.append(GrpcCase("oversized", create, huge.SerializeToString(), "RESOURCE_EXHAUSTED"))
    cases.append(GrpcCase("unknown method", "/api.TaskService/Nope", b"", "UNIMPLEMENTED"))
    cases.append(GrpcCase("empty CreateTask", create, b"", "INVALID_ARGUMENT"))
    return cases


GRPC_CASES = _grpc_cases()
