"""The media types a JSON route accepts (docs/decisions.md D16, T32). Pure.

A route whose body is JSON accepts `application/json`, any `…+json` type (parameters such as
`charset` allowed), or no Content-Type at all; anything else is 415, so that a browser form
(`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`), which needs no CORS
preflight, cannot write. HttpBody routes take any type (T36); routes without a body ignore it.
"""

from __future__ import annotations

import grpc

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.routing import Route

UNSUPPORTED_MEDIA_TYPE = 415


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


def check_json_media_type(content_type: str) -> None:
    """415 (in the usual error shape) naming the media type, unless it is JSON."""
    if is_json_media_type(content_type):
        return
    shown = content_type.partition(";")[0].strip()[:100]
    raise TranscodeError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f'unsupported media type "{shown}": this route takes a JSON body; send '
        "Content-Type: application/json",
        http_status=UNSUPPORTED_MEDIA_TYPE,
    )


def check_request_media_type(route: Route, content_type: str) -> None:
    """D16 for one request: a route with a JSON body refuses other media types."""
    if route.body_field is not None and not route.request_is_http_body:
        check_json_media_type(content_type)
