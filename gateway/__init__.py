"""The generic REST transcoder: `google.api.http` rules from service descriptors, served by aiohttp.

Never imports `api/`, `server/` or `store/`; it sees services only as descriptors and calls them
through the `Invoker` protocol.
"""

from taskgate.gateway.app import create_gateway_app, replace_routes
from taskgate.gateway.errors import (
    TranscodeError,
    error_body,
    http_status_for,
    status_from_exception,
)
from taskgate.gateway.http_rules import RouteConfigError
from taskgate.gateway.invoker import CallOptions, Invoker, UnaryResult
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import MethodNotAllowed, NoRoute, Route, RouteMatch, RouteTable
from taskgate.gateway.status import RpcStatus, RpcStatusError

__all__ = [
    "CallOptions",
    "GatewayOptions",
    "Invoker",
    "MethodNotAllowed",
    "NoRoute",
    "Route",
    "RouteConfigError",
    "RouteMatch",
    "RouteTable",
    "RpcStatus",
    "RpcStatusError",
    "TranscodeError",
    "UnaryResult",
    "create_gateway_app",
    "error_body",
    "http_status_for",
    "replace_routes",
    "status_from_exception",
]
