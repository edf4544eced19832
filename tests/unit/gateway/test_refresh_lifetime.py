"""What the transcoder keeps per message lives as long as its route table (issue 7).

`taskgate gateway` builds a new descriptor pool and route table on every refresh. Nothing kept
at module level may hold the old pools, or memory grows by one pool per refresh.
"""

from __future__ import annotations

import gc

import pytest
from google.protobuf import descriptor_pool

from taskgate.gateway.errors import TranscodeError
from taskgate.gateway.options import GatewayOptions
from taskgate.gateway.request_mapping import build_request
from taskgate.gateway.routing import RouteMatch, RouteTable
from tests.unit.gateway.descriptors import FIXTURE, copy_into_new_pool

REFRESHES = 200
OPTIONS = GatewayOptions.generic()
#: requests that look fields up by proto and JSON name: path, query, body, and a body error.
REQUESTS = [
    ("GET", "/v1/echo/s", "fInt32=5&nested.child.name=x&labels[k]=v&shownAs=d", b""),
    ("POST", "/v1/echo", "", b'{"fInt32":1,"nested":{"child":{"count":2}},"items":[{"name":"n"}]}'),
    ("GET", "/v1/echo/nested/a/x/y", "nested.count=3", b""),
    ("PATCH", "/v1/shelves/s/books/b", "", b'{"title":"t","pageCount":"3","unknown":1}'),
]
_POOL_TYPE = type(descriptor_pool.DescriptorPool())


def _live_pools() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is _POOL_TYPE)


def _refresh() -> None:
    """One refresh: a new pool with the same files, its route table, and a few requests."""
    pool = copy_into_new_pool(FIXTURE)
    services = FIXTURE.services_by_name.values()
    table = RouteTable.from_services(pool.FindServiceByName(s.full_name) for s in services)
    for http_method, path, query, body in REQUESTS:
        found = table.match(http_method, path)
        assert isinstance(found, RouteMatch), found
        build_request(found, query, body, "application/json", OPTIONS)
    found = table.match("POST", "/v1/echo")
    assert isinstance(found, RouteMatch)
    with pytest.raises(TranscodeError, match=r'field "nested\.count"'):
        build_request(found, "", b'{"nested":{"count":"x"}}', "application/json", OPTIONS)


def test_old_pools_are_released_after_many_refreshes() -> None:
    _refresh()
    before = _live_pools()
    for _ in range(REFRESHES):
        _refresh()
    assert _live_pools() - before <= 1
