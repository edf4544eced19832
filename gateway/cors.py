"""CORS for the REST door (`--cors-origin ORIGIN`, repeatable; off by default).

aiohttp-cors wraps individual routes and handles OPTIONS per route, which does not fit the
gateway's single catch-all route; this small middleware does what it would, for the listed
origins only:

- a preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) from a listed origin
  is answered 204 with `Access-Control-Allow-Origin` (that origin), `-Allow-Methods` (the
  method asked for), `-Allow-Headers` (the headers asked for) and `-Max-Age`; from any other
  origin it is not answered specially (the route table answers, typically 405), and the browser
  refuses the call;
- any other request from a listed origin gets `Access-Control-Allow-Origin` and
  `Access-Control-Expose-Headers` on its response, errors included;
- the preflight allows whatever headers it asks for, so the ones gRPC-Web and Connect clients
  send (`X-Grpc-Web`, `X-User-Agent`, `Grpc-Timeout`, `Connect-Protocol-Version`,
  `Connect-Timeout-Ms`, ...) pass, and the headers those clients read are exposed (T86);
- every response says `Vary: Origin`. Credentials (cookies) are not allowed.

`cors_headers` is the pure decision; `install_cors` applies it to an app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from taskgate.gateway.encoding import vary_with

MAX_AGE_SECONDS = "600"
#: methods a preflight may ask for; anything else is not answered.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
#: response headers a page may read: REST's, and what gRPC-Web and Connect clients read (T86).
EXPOSED = ", ".join(
    (
        "Grpc-Metadata-Content-Type",
        "Grpc-Status",
        "Grpc-Message",
        "Grpc-Status-Details-Bin",
        "Grpc-Encoding",
        "Grpc-Accept-Encoding",
        "Connect-Content-Encoding",
        "Connect-Accept-Encoding",
        "Content-Encoding",
        "X-Request-Id",
    )
)


def cors_headers(
    method: str, headers: Mapping[str, str], origins: frozenset[str]
) -> tuple[bool, dict[str, str]]:
    """(is this an answerable preflight?, headers to add to the response)."""
    origin = headers.get("Origin", "")
    added = {"Vary": "Origin"}
    if not origin or origin.lower() not in origins:
        return False, added
    added["Access-Control-Allow-Origin"] = origin
    asked = headers.get("Access-Control-Request-Method", "").upper()
    if method == "OPTIONS" and asked:
        if asked not in METHODS:
            return False, {"Vary": "Origin"}
        added["Access-Control-Allow-Methods"] = asked
        requested = headers.get("Access-Control-Request-Headers", "")
        if requested:
            added["Access-Control-Allow-Headers"] = requested
        added["Access-Control-Max-Age"] = MAX_AGE_SECONDS
        return True, added
    added["Access-Control-Expose-Headers"] = EXPOSED
    return False, added


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install_cors(app: web.Application, origins: frozenset[str]) -> None:
    """Answer preflights from `origins` (lower-case) and add the CORS headers to every response,
    streamed ones included (on_response_prepare runs before any header is sent)."""

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        answerable, added = cors_headers(request.method, request.headers, origins)
        if answerable:
            return web.Response(status=204, headers=added)
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        answerable, added = cors_headers(request.method, request.headers, origins)
        if not answerable:
            # Vary is merged, not replaced: encoding.py may have said Accept-Encoding.
            added["Vary"] = vary_with(response.headers.get("Vary"), added["Vary"])
            response.headers.update(added)

    app.middlewares.append(preflight)
    app.on_response_prepare.append(add_headers)
