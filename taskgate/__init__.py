"""taskgate: Kubeflow Pipelines' TaskService over gRPC and REST, and a REST gateway for any
gRPC server.

The distribution installs one top-level package; its parts are `taskgate.api` (protos and
generated code), `taskgate.server` (the TaskService, call pipeline and `serve`),
`taskgate.gateway` (the generic transcoder and `gateway`) and `taskgate.store` (PostgreSQL).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("taskgate")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
