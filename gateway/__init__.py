"""The generic REST transcoder: `google.api.http` rules from service descriptors, served by aiohttp.

Never imports `api/`, `server/` or `store/`; it sees services only as descriptors and calls them
through the `Invoker` protocol.
"""

from gateway.app import create_gateway_app, replace_routes
from gateway.errors import TranscodeError, error_body, http_status_for, status_from_exception
from gateway.http_rules import RouteConfigError
from gateway.invoker import CallOptions, Invoker, UnaryResult
from gateway.options import GatewayOptions
from gateway.routing import MethodNotAllowed, NoRoute, Route, RouteMatch, RouteTable
from gateway.status import RpcStatus, RpcStatusError

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
