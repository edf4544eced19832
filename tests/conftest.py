"""Root conftest: shared fixture plugins, and the tests that run only when asked for."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.integration.servers"]

#: Markers of tests that need what `pip install -e '.[dev]'` cannot provide (a Go program, a
#: package index, buf from npm): plain `pytest` leaves them out, `pytest -m NAME` runs them
#: (.ci/run does).
ON_REQUEST = ("peer", "packaging", "browser", "buf")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = str(config.getoption("markexpr") or "")
    skipped = [m for m in ON_REQUEST if m not in asked]
    kept: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    for item in items:
        if any(item.get_closest_marker(m) for m in skipped):
            left_out.append(item)
        else:
            kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
