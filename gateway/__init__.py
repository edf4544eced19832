"""The generic REST transcoder: `google.api.http` rules from service descriptors, served by aiohttp.

Never imports `api/`, `server/` or `store/`; it sees services only as descriptors and calls them
through the `Invoker` protocol (`gateway/invoker.py`, with the shared vocabulary of
`taskgate/rpc.py`). Import from the modules: this package imports nothing by itself, so reading
the `gateway` command's flags (gateway/cli.py) loads neither grpc nor aiohttp.
"""
