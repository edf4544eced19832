"""`GET /openapi.json`, `GET /docs` (Swagger UI) and its assets under `/docs/static/` (P10).

The document is built from a route table once, on first request, and kept as bytes with that
table (`OpenApiCache`); a refresh brings a new table and so a new cache. Swagger UI's files come
from the installed `swagger-ui-bundle-v2` package (module `swagger_ui_bundle`), read once, so
the page works offline. These paths answer only where no route of a service matches
(docs/decisions.md P10).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from aiohttp import web

from taskgate.gateway.openapi import openapi_json
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.routing import RouteTable

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
STATIC_PREFIX = "/docs/static/"
#: The Swagger UI files the page loads, and their media types; nothing else is served.
ASSETS: Mapping[str, str] = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} – API</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
</script>
</body>
</html>
"""


class OpenApiCache:
    """The OpenAPI bytes of one route table under one set of options, built on first use."""

    __slots__ = ("_body", "_comments", "_options", "_routes", "_title")

    def __init__(
        self,
        routes: RouteTable,
        options: GatewayOptions,
        *,
        title: str = "taskgate",
        comments: Mapping[str, str] | None = None,
    ) -> None:
        self._routes = routes
        self._options = options
        self._title = title
        self._comments = comments
        self._body: bytes | None = None

    @property
    def title(self) -> str:
        return self._title

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = openapi_json(
                self._routes,
                self._options,
                title=self._title,
                version=_version(),
                comments=self._comments,
            )
        return self._body


def is_docs_path(method: str, path: str) -> bool:
    """A path this module answers (GET only), once no route of a service has matched."""
    return method == "GET" and (path in (OPENAPI_PATH, DOCS_PATH) or path.startswith(STATIC_PREFIX))


def docs_response(path: str, cache_: OpenApiCache) -> web.Response | None:
    """The response for `path`; None if it is none of ours (then the caller's 404 stands)."""
    if path == OPENAPI_PATH:
        return web.Response(body=cache_.body, content_type="application/json")
    if path == DOCS_PATH:
        return web.Response(
            text=_PAGE.format(title=_escape(cache_.title)), content_type="text/html"
        )
    name = path[len(STATIC_PREFIX) :]
    if name not in ASSETS:
        return None
    data = _asset(name)
    if data is None:
        return None
    response = web.Response(body=data, content_type=ASSETS[name])
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@cache
def _asset(name: str) -> bytes | None:
    folder = _swagger_ui_folder()
    if folder is None:
        return None
    return (folder / name).read_bytes()


def _swagger_ui_folder() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


@cache
def _version() -> str:
    try:
        return importlib.metadata.version("taskgate")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
