"""Small gRPC-Web and Connect clients over aiohttp, for the integration tests of both commands.

They speak the wire format from the protocol specs, independently of the gateway's own
modules except for the 5-byte envelope, so a test sees what any client would.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from google.protobuf.message import Message
from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


def frames(body: bytes) -> list[tuple[int, bytes]]:
    found = []
    offset = 0
    while offset < len(body):
        flags, length = struct.unpack_from(">BI", body, offset)
        found.append((flags, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    assert offset == len(body), "a truncated frame"
    return found


def unpadded_b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@dataclass
class WebAnswer:
    """A gRPC-Web response: HTTP status and headers, the messages, the trailers."""

    http_status: int
    headers: dict[str, str]
    messages: list[bytes]
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> int:
        return int(self.trailers.get("grpc-status", self.headers.get("grpc-status", "-1")))

    @property
    def message(self) -> str:
        return unquote(self.trailers.get("grpc-message", ""))

    def status(self) -> status_pb2.Status:
        return status_pb2.Status.FromString(
            unpadded_b64decode(self.trailers["grpc-status-details-bin"])
        )


async def grpc_web_call(
    http: aiohttp.ClientSession,
    url: str,
    request: Message | bytes,
    *,
    text: bool = False,
    headers: dict[str, str] | None = None,
) -> WebAnswer:
    payload = request if isinstance(request, bytes) else envelope(request.SerializeToString())
    content_type = "application/grpc-web-text" if text else "application/grpc-web+proto"
    body = base64.b64encode(payload) if text else payload
    sent = {"Content-Type": content_type, "X-Grpc-Web": "1", **(headers or {})}
    async with http.post(url, data=body, headers=sent) as response:
        raw = await response.read()
        answer = WebAnswer(response.status, dict(response.headers), [])
    if text:
        raw = base64.b64decode(raw)
    for flags, data in frames(raw):
        if flags & 0x80:
            for line in data.decode("ascii").split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    answer.trailers[key.strip().lower()] = value.strip()
        else:
            answer.messages.append(data)
    return answer


@dataclass
class ConnectAnswer:
    http_status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def connect_unary(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> ConnectAnswer:
    sent = {"Content-Type": content_type, "Connect-Protocol-Version": "1", **(headers or {})}
    async with http.post(url, data=body, headers=sent) as response:
        return ConnectAnswer(response.status, dict(response.headers), await response.read())


async def connect_stream(
    http: aiohttp.ClientSession,
    url: str,
    message: bytes,
    *,
    codec: str = "json",
    headers: dict[str, str] | None = None,
) -> tuple[int, list[bytes], dict[str, Any]]:
    """(HTTP status, messages, the end-of-stream JSON) of a server-streaming call."""
    sent = {
        "Content-Type": f"application/connect+{codec}",
        "Connect-Protocol-Version": "1",
        **(headers or {}),
    }
    async with http.post(url, data=envelope(message), headers=sent) as response:
        raw = await response.read()
        status = response.status
    found = frames(raw)
    assert found[-1][0] == 0x02, found
    assert all(flags == 0 for flags, _ in found[:-1])
    return status, [data for _, data in found[:-1]], json.loads(found[-1][1])
