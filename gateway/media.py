"""The media types a JSON route accepts (docs/decisions.md D16, T32). Pure.

A route whose body is JSON accepts `application/json`, any `…+json` type (parameters such as
`charset` allowed), or no Content-Type at all; anything else is 415, so that a browser form
(`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`), which needs no CORS
preflight, cannot write. A streamed request body (client-streaming and bidirectional routes,
T62) may also say what it is: newline-delimited JSON, `application/x-ndjson` or
`application/jsonl`; neither is a type a form can send either. HttpBody routes take any type
(T36); routes without a body ignore it.
"""

from __future__ import annotations

import grpc

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.routing import Route

UNSUPPORTED_MEDIA_TYPE = 415
NDJSON_MEDIA_TYPE = "application/x-ndjson"
#: What else a streamed request body may be (T62): newline-delimited JSON, by either name.
STREAM_MEDIA_TYPES = frozenset({NDJSON_MEDIA_TYPE, "application/jsonl"})


def is_json_media_type(content_type: str) -> bool:
    """True for "", `application/json` and `type/…+json` (case-insensitive, parameters
    ignored)."""
    media_type = content_type.partition(";")[0].strip().lower()
    if not media_type:
        return True
    kind, slash, subtype = media_type.partition("/")
    if not slash or not kind or not subtype:
        return False
    return media_type == "application/json" or subtype.endswith("+json")


def is_stream_media_type(content_type: str) -> bool:
    """True for JSON and for the newline-delimited JSON types (parameters ignored)."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type in STREAM_MEDIA_TYPES or is_json_media_type(media_type)


def check_json_media_type(content_type: str, *, streamed: bool = False) -> None:
    """415 (in the usual error shape) naming the media type, unless it is JSON (or, for a
    `streamed` body, newline-delimited JSON)."""
    if is_stream_media_type(content_type) if streamed else is_json_media_type(content_type):
        return
    shown = content_type.partition(";")[0].strip()[:100]
    takes, send = (
        ("newline-delimited JSON", f"{NDJSON_MEDIA_TYPE} or application/json")
        if streamed
        else ("a JSON body", "application/json")
    )
    raise TranscodeError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f'unsupported media type "{shown}": this route takes {takes}; send Content-Type: {send}',
        http_status=UNSUPPORTED_MEDIA_TYPE,
    )


def check_request_media_type(route: Route, content_type: str) -> None:
    """D16 for one request: a route with a JSON body refuses other media types."""
    if route.body_field is not None and not route.request_is_http_body:
        check_json_media_type(content_type, streamed=route.client_streaming)
