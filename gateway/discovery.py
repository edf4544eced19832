"""Find an upstream's services: gRPC server reflection (v1, then v1alpha) or a descriptor-set file.

Owns building a fresh `DescriptorPool` from what the upstream sends. It does not read HTTP rules
(that is `routing`'s job) and it never touches the default pool except to fill a missing dependency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import any_pb2, descriptor, descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_reflection.v1alpha import reflection_pb2

from taskgate.gateway.openapi import comments_from_files
from taskgate.gateway.upstream import describe_unreachable, unreachable_is_lasting

log = logging.getLogger(__name__)

#: v1 and v1alpha share their messages field for field; only the service name differs.
REFLECTION_METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
#: Infrastructure services that never get REST routes.
SKIPPED_SERVICE_PREFIXES = ("grpc.reflection.", "grpc.health.v1.Health")


class DiscoveryError(Exception):
    """The upstream's services could not be found; the message says why, for the operator.

    `retryable`: the upstream is not there (yet), or did not answer; asking again later may work
    (docs/decisions.md T73). Otherwise it answered, and what it said will not change by waiting."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class DiscoveredServices:
    """The services to serve, and the pool that holds their descriptors (and all dependencies)."""

    pool: descriptor_pool.DescriptorPool
    services: tuple[ServiceDescriptor, ...]
    #: proto comments by full name, where the files carry SourceCodeInfo (for /openapi.json).
    comments: Mapping[str, str] = field(default_factory=dict)


class _Reflection:
    """ServerReflectionInfo on one method path, one request per call.

    Each question is its own call with a single request message (sent with the half-close, as a
    unary call does). A bidi stream would race: grpc.aio turns a write that crosses the server's
    immediate UNIMPLEMENTED into "INTERNAL: Internal error from Core", so the v1 → v1alpha
    fallback would fail now and then. Reflection servers answer each request on its own, so
    nothing is lost.
    """

    def __init__(self, channel: grpc.aio.Channel, method: str, deadline: float) -> None:
        self._ask = channel.unary_unary(
            method,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        self._deadline = deadline

    async def ask(self, **request: str) -> reflection_pb2.ServerReflectionResponse:
        left = max(self._deadline - time.monotonic(), 0.001)
        message = reflection_pb2.ServerReflectionRequest(**request)
        response = await self._ask(message, timeout=left, wait_for_ready=False)
        assert isinstance(response, reflection_pb2.ServerReflectionResponse)  # noqa: S101
        return response


async def discover_services(
    channel: grpc.aio.Channel,
    *,
    target: str = "",
    timeout: float = 10.0,  # noqa: ASYNC109 (a deadline shared by every reflection call)
) -> DiscoveredServices:
    """Ask the upstream (named `target` in errors) for its services through server reflection."""
    upstream = f"upstream {target}" if target else "the upstream"
    deadline = time.monotonic() + timeout
    for method in REFLECTION_METHODS:
        try:
            names, files = await _fetch_files(_Reflection(channel, method, deadline))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                log.debug("%s does not serve %s", upstream, method)
                continue
            raise DiscoveryError(_rpc_failure(upstream, exc), retryable=_retryable(exc)) from None
        return _build(files.values(), names=names)
    raise DiscoveryError(
        f"{upstream} does not serve gRPC server reflection (grpc.reflection.v1 or v1alpha); "
        "enable reflection there or pass --descriptor-set FILE"
    )


def load_descriptor_set(path: Path) -> DiscoveredServices:
    """Load a serialized FileDescriptorSet (protoc --descriptor_set_out --include_imports)."""
    try:
        fds = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    except OSError as exc:
        raise DiscoveryError(f"cannot read descriptor set {path}: {exc.strerror}") from None
    except DecodeError:
        raise DiscoveryError(f"{path} is not a serialized FileDescriptorSet") from None
    names = [f"{_prefix(f.package)}{s.name}" for f in fds.file for s in f.service]
    return _build(fds.file, names=names)


#: Files received so far, by file name.
_Files = dict[str, descriptor_pb2.FileDescriptorProto]


async def _fetch_files(stream: _Reflection) -> tuple[list[str], _Files]:
    """The served service names, and every file they need (dependencies by name until none miss)."""
    files: _Files = {}
    listed = await stream.ask(list_services="")
    names = [s.name for s in listed.list_services_response.service if _is_served(s.name)]
    for name in names:
        _take(files, await stream.ask(file_containing_symbol=name), name)
    while missing := _missing_dependencies(files):
        for filename in missing:
            response = await stream.ask(file_by_filename=filename)
            if not _take(files, response, filename, required=False):
                files[filename] = _default_pool_copy(filename)
    return names, files


def _take(
    files: _Files,
    response: reflection_pb2.ServerReflectionResponse,
    asked: str,
    *,
    required: bool = True,
) -> bool:
    if response.HasField("error_response"):
        if not required:
            return False
        message = response.error_response.error_message or "not found"
        raise DiscoveryError(f"the upstream could not describe {asked}: {message}")
    for blob in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
        files.setdefault(proto.name, proto)
    return True


def _missing_dependencies(files: Mapping[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    needed = {dep for proto in files.values() for dep in proto.dependency}
    return sorted(needed - files.keys())


def default_pool_file(filename: str) -> descriptor_pb2.FileDescriptorProto:
    """The file as this process's default pool holds it (KeyError if it holds none)."""
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor_pool.Default().FindFileByName(filename).CopyToProto(proto)
    return proto


def _default_pool_copy(filename: str) -> descriptor_pb2.FileDescriptorProto:
    try:
        proto = default_pool_file(filename)
    except KeyError:
        raise DiscoveryError(
            f"the upstream did not send {filename}, and it is not known here"
        ) from None
    log.info("%s was not provided; using the local copy", filename)
    return proto


def with_imports(
    protos: Iterable[descriptor_pb2.FileDescriptorProto],
) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """`protos` by file name, with every file they import (transitively) that they lack copied
    from the default pool; DiscoveryError names one the default pool does not know either."""
    by_name = {p.name: p for p in protos}
    while missing := _missing_dependencies(by_name):
        by_name.update((dep, _default_pool_copy(dep)) for dep in missing)
    return by_name


def build_pool(
    protos: Iterable[descriptor_pb2.FileDescriptorProto],
) -> descriptor_pool.DescriptorPool:
    """A fresh pool holding `protos` and their imports (`with_imports`), each after its imports."""
    by_name = with_imports(protos)
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    for name in sorted(by_name):
        _add_in_order(pool, by_name, name, added)
    return pool


def _build(
    protos: Iterable[descriptor_pb2.FileDescriptorProto], *, names: Iterable[str]
) -> DiscoveredServices:
    protos = tuple(protos)
    pool = build_pool(protos)
    services: list[descriptor.ServiceDescriptor] = []
    for name in dict.fromkeys(names):
        if not _is_served(name):
            continue
        try:
            services.append(pool.FindServiceByName(name))
        except KeyError:
            raise DiscoveryError(
                f"the upstream lists service {name} but none of its files defines it"
            ) from None
    return DiscoveredServices(
        pool=pool, services=tuple(services), comments=comments_from_files(protos)
    )


def _add_in_order(
    pool: descriptor_pool.DescriptorPool,
    by_name: Mapping[str, descriptor_pb2.FileDescriptorProto],
    name: str,
    added: set[str],
) -> None:
    """Add `name` after its dependencies (imports form a DAG, so plain DFS is enough)."""
    if name in added:
        return
    added.add(name)
    proto = by_name[name]
    for dep in proto.dependency:
        _add_in_order(pool, by_name, dep, added)
    try:
        pool.AddSerializedFile(proto.SerializeToString())
    except (TypeError, ValueError) as exc:
        raise DiscoveryError(f"the upstream's {name} does not load: {exc}") from None


def _is_served(service: str) -> bool:
    return not service.startswith(SKIPPED_SERVICE_PREFIXES)


def _prefix(package: str) -> str:
    return f"{package}." if package else ""


#: Codes of a reflection call that say the upstream is not (yet) able to answer.
_RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
    }
)


def _retryable(exc: grpc.aio.AioRpcError) -> bool:
    if exc.code() not in _RETRYABLE_CODES:
        return False
    return not unreachable_is_lasting(exc.details() or "")


def _rpc_failure(upstream: str, exc: grpc.aio.AioRpcError) -> str:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        details = exc.details() or ""
        return f"cannot reach {upstream}: {describe_unreachable(details) or details}"
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"{upstream} did not answer server reflection in time"
    return f"server reflection on {upstream} failed: {exc.code().name}: {exc.details()}"


#: Unknown type names remembered (the upstream could not describe them), at most this many.
MAX_UNKNOWN_DETAIL_TYPES = 256
#: Seconds the upstream's reflection has to describe one detail type.
DETAIL_TYPE_TIMEOUT = 2.0


class DetailTypes:
    """Error-detail types the gateway's pool lacks, found through the upstream's reflection.

    An upstream's error may carry a detail whose type no served method mentions (`api.Error`
    beside task.proto, which does not import it), so discovery never fetched its file. Before
    such an error is rendered, `resolve` asks reflection for the file defining the type
    (`file_containing_symbol`) and adds it, with its missing imports, to `pool`: the renderer
    then finds it there (docs/decisions.md T74). A type the upstream cannot describe is
    remembered (at most MAX_UNKNOWN_DETAIL_TYPES) and rendered as base64 from then on; a type
    found is in the pool for good. A failed reflection call is not remembered.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        pool: descriptor_pool.DescriptorPool,
        *,
        timeout: float = DETAIL_TYPE_TIMEOUT,
    ) -> None:
        self._channel = channel
        self.pool = pool
        self._timeout = timeout
        self._unknown: dict[str, None] = {}
        self._lock = asyncio.Lock()

    async def resolve(self, details: Sequence[any_pb2.Any]) -> None:
        """Add the types of `details` the pools do not know, where the upstream describes them."""
        names = [d.TypeName() for d in details]
        wanted = [n for n in dict.fromkeys(names) if n and not self._known(n)]
        if not wanted:
            return
        async with self._lock:  # one lookup at a time; a second error waits and finds it known
            for name in wanted:
                if not self._known(name):
                    await self._fetch(name)

    def _known(self, name: str) -> bool:
        if name in self._unknown:
            return True
        for pool in (self.pool, descriptor_pool.Default()):
            try:
                pool.FindMessageTypeByName(name)
            except KeyError:
                continue
            return True
        return False

    async def _fetch(self, name: str) -> None:
        deadline = time.monotonic() + self._timeout
        for method in REFLECTION_METHODS:
            reflection = _Reflection(self._channel, method, deadline)
            try:
                response = await reflection.ask(file_containing_symbol=name)
                if response.HasField("error_response"):
                    break
                files: _Files = {}
                _take(files, response, name)
                await self._fetch_imports(reflection, files)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    continue
                log.debug("could not ask for detail type %s: %s", name, exc.code().name)
                return  # not remembered: the next error asks again
            except DiscoveryError as error:
                log.info("cannot use detail type %s: %s", name, error)
                break
            try:
                _add_missing(self.pool, files)
                self.pool.FindMessageTypeByName(name)
            except (DiscoveryError, KeyError) as error:
                log.info("cannot use detail type %s: %s", name, error)
                break
            log.info("added error detail type %s from the upstream", name)
            return
        self._remember_unknown(name)

    async def _fetch_imports(self, reflection: _Reflection, files: _Files) -> None:
        while missing := [f for f in _missing_dependencies(files) if not _in_pool(self.pool, f)]:
            for filename in missing:
                response = await reflection.ask(file_by_filename=filename)
                if not _take(files, response, filename, required=False):
                    files[filename] = _default_pool_copy(filename)

    def _remember_unknown(self, name: str) -> None:
        if len(self._unknown) >= MAX_UNKNOWN_DETAIL_TYPES:
            del self._unknown[next(iter(self._unknown))]  # the oldest goes
        self._unknown[name] = None


def _in_pool(pool: descriptor_pool.DescriptorPool, filename: str) -> bool:
    try:
        pool.FindFileByName(filename)
    except KeyError:
        return False
    return True


def _add_missing(pool: descriptor_pool.DescriptorPool, files: _Files) -> None:
    """Add those of `files` the pool lacks, each after its imports."""
    named = {*files, *(dep for proto in files.values() for dep in proto.dependency)}
    added = {name for name in named if _in_pool(pool, name)}
    for name in sorted(files):
        _add_in_order(pool, files, name, added)
