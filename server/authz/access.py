"""Multi-user mode's decisions: who the caller is, and what they may read and write.

An `Authority` authenticates a call (metadata → `Caller`) and answers "may this caller read or
write this namespace?"; `PolicyAuthority` decides from the policy file, `KubernetesAuthority`
(kubernetes.py) asks the Kubernetes API server. The call pipeline authenticates every call
through the `Gate` (whose authority SIGHUP swaps) and binds the caller for the handler
(`current_caller`); TaskService then calls `require_write` and `restrict_list`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

import grpc

from taskgate.rpc import Metadata
from taskgate.server.authz.credentials import CredentialsError, read_credentials
from taskgate.server.authz.policy import Policy
from taskgate.server.errors import ServiceError
from taskgate.store.records import Column, Condition, Op, TaskQuery

log = logging.getLogger(__name__)


class Verb(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller."""

    identity: str
    #: Kubernetes groups (from a TokenReview); empty otherwise.
    groups: tuple[str, ...] = ()

    @property
    def binding(self) -> str:
        """What a page token carries to tie it to this caller (a digest, not the identity)."""
        return hashlib.sha256(self.identity.encode()).hexdigest()[:22]


class Authority(Protocol):
    policy: Policy

    async def authenticate(self, metadata: Metadata) -> Caller:
        """The caller; ServiceError UNAUTHENTICATED (or UNAVAILABLE) if there is none."""

    async def may(self, caller: Caller, verb: Verb, namespace: str) -> bool: ...

    async def readable(self, caller: Caller, named: frozenset[str]) -> frozenset[str]:
        """The namespaces a list may show: every readable one the authority knows of, at least
        those of `named` that the caller may read."""

    async def close(self) -> None: ...


def unauthenticated(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, f"Unauthenticated: {message}", message)


def permission_denied(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.PERMISSION_DENIED, f"PermissionDenied: {message}", message)


def shared_allows(policy: Policy, verb: Verb) -> bool:
    return policy.shared == "write" or (policy.shared == "read" and verb is Verb.READ)


class PolicyAuthority:
    """The policy file decides: the identity header, the tokens file, `namespaces`, `shared`."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def authenticate(self, metadata: Metadata) -> Caller:
        policy = self.policy
        try:
            credentials = read_credentials(
                metadata,
                policy.identity_header,
                policy.identity_prefix,
                accept_tokens=policy.accepts_tokens,
            )
        except CredentialsError as error:
            raise unauthenticated(str(error)) from None
        if credentials.token is not None:
            identity = policy.tokens.get(_digest(credentials.token))
            if identity is None:
                raise unauthenticated("unknown bearer token")
            return Caller(identity)
        assert credentials.header_identity is not None  # noqa: S101 - read_credentials' contract
        return Caller(credentials.header_identity)

    async def may(self, caller: Caller, verb: Verb, namespace: str) -> bool:
        return policy_allows(self.policy, caller.identity, verb, namespace)

    async def readable(self, caller: Caller, named: frozenset[str]) -> frozenset[str]:
        return frozenset(
            namespace
            for namespace in (*self.policy.namespaces, "")
            if policy_allows(self.policy, caller.identity, Verb.READ, namespace)
        )

    async def close(self) -> None:
        pass


def policy_allows(policy: Policy, identity: str, verb: Verb, namespace: str) -> bool:
    """The policy file's rule: a writer may also read; the empty namespace follows `shared`."""
    if namespace == "":
        return shared_allows(policy, verb)
    rights = policy.namespaces.get(namespace)
    if rights is None:
        return False
    return identity in rights.write or (verb is Verb.READ and identity in rights.read)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: The caller of the call being handled; None in single-user mode (no --authz-policy).
_CALLER: ContextVar[tuple[Caller, Authority] | None] = ContextVar("taskgate_caller", default=None)


def current_caller() -> tuple[Caller, Authority] | None:
    return _CALLER.get()


@contextlib.contextmanager
def acting_as(caller: Caller, authority: Authority) -> Iterator[None]:
    token = _CALLER.set((caller, authority))
    try:
        yield
    finally:
        _CALLER.reset(token)


class Gate:
    """Holds the current authority; `replace` (on SIGHUP) takes effect from the next call, and
    the old one is closed once the calls that may still use it had time to finish."""

    def __init__(self, authority: Authority, retire_after: float = 60.0) -> None:
        self.authority = authority
        self._retire_after = retire_after
        self._retiring: set[asyncio.Task[None]] = set()

    async def admit(self, metadata: Metadata) -> tuple[Caller, Authority]:
        authority = self.authority
        return await authority.authenticate(metadata), authority

    def replace(self, authority: Authority) -> None:
        old, self.authority = self.authority, authority
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, authority: Authority) -> None:
        await asyncio.sleep(self._retire_after)
        await authority.close()

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.authority.close()


async def require_write(namespace: str) -> None:
    """CreateTask: 403 unless the caller may write `namespace` (nothing is written then)."""
    bound = current_caller()
    if bound is None:
        return
    caller, authority = bound
    if not await authority.may(caller, Verb.WRITE, namespace):
        raise permission_denied(f"{caller.identity} may not write {_label(namespace)}")


def named_namespaces(conditions: Iterable[Condition]) -> frozenset[str]:
    """The namespaces a query names outright: `namespace` EQUALS or IN values (a filter, a
    page token's filter, or a NAMESPACE resource key)."""
    named: set[str] = set()
    for condition in conditions:
        if condition.column is not Column.NAMESPACE:
            continue
        if condition.op is Op.EQ and isinstance(condition.value, str):
            named.add(condition.value)
        elif condition.op is Op.IN and isinstance(condition.value, tuple):
            named.update(str(value) for value in condition.value)
    return frozenset(named)


async def restrict_list(query: TaskQuery) -> TaskQuery:
    """ListTasks: 403 if the query names a namespace the caller may not read; else the query
    with `namespace IN (readable namespaces)` added, so the SQL itself (rows and total_size)
    sees only what the caller may read."""
    bound = current_caller()
    if bound is None:
        return query
    caller, authority = bound
    named = named_namespaces(query.conditions)
    for namespace in sorted(named):
        if not await authority.may(caller, Verb.READ, namespace):
            raise permission_denied(f"{caller.identity} may not read {_label(namespace)}")
    visible = await authority.readable(caller, named)
    restriction = Condition(Column.NAMESPACE, Op.IN, tuple(sorted(visible)))
    return replace(query, conditions=(*query.conditions, restriction))


def _label(namespace: str) -> str:
    return f'namespace "{namespace}"' if namespace else "the shared (empty) namespace"
