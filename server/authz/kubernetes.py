"""`authority: kubernetes`: the Kubernetes API server authenticates and authorizes, as KFP's
API server does in multi-user mode.

A bearer token is checked with a TokenReview (authentication.k8s.io/v1), which gives the user
and groups; a trusted identity header names a user with no groups. Each namespace and verb is a
SubjectAccessReview (authorization.k8s.io/v1) on the policy's resource (by default
`pipelines.kubeflow.org/v1beta1` `runs`, verb `list` to read and `create` to write). taskgate
calls the API server with its own service-account token (re-read from the file, as projected
tokens rotate) and CA. Answers are cached for `cache_seconds`; the empty (shared) namespace
follows the policy's `shared`, never a cluster-wide review.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
from typing import Any

import aiohttp

from taskgate.rpc import Metadata
from taskgate.server.authz.access import Caller, Verb, shared_allows, unauthenticated
from taskgate.server.authz.credentials import CredentialsError, read_credentials
from taskgate.server.authz.policy import KubernetesSettings, Policy
from taskgate.server.errors import unavailable

log = logging.getLogger(__name__)

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"  # noqa: S105 - a path
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
#: entries kept per cache before it is emptied (a bound, not a tuning knob).
CACHE_LIMIT = 10_000


class TtlCache:
    """A small expiring map; `now` is injectable for tests."""

    def __init__(self, seconds: float, now: Any = time.monotonic) -> None:
        self._seconds = seconds
        self._now = now
        self._entries: dict[object, tuple[float, object]] = {}

    def get(self, key: object) -> object | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if self._now() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: object, value: object) -> None:
        if self._seconds <= 0:
            return
        if len(self._entries) >= CACHE_LIMIT:
            self._entries.clear()
        self._entries[key] = (self._now() + self._seconds, value)


class KubernetesAuthority:
    """TokenReview + SubjectAccessReview, cached briefly."""

    def __init__(self, policy: Policy) -> None:
        assert policy.kubernetes is not None  # noqa: S101 - only built for authority: kubernetes
        self.policy = policy
        self.settings: KubernetesSettings = policy.kubernetes
        self._users = TtlCache(self.settings.cache_seconds)
        self._decisions = TtlCache(self.settings.cache_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def authenticate(self, metadata: Metadata) -> Caller:
        policy = self.policy
        try:
            credentials = read_credentials(
                metadata, policy.identity_header, policy.identity_prefix, accept_tokens=True
            )
        except CredentialsError as error:
            raise unauthenticated(str(error)) from None
        if credentials.token is None:
            assert credentials.header_identity is not None  # noqa: S101
            return Caller(credentials.header_identity)
        key = hashlib.sha256(credentials.token.encode()).hexdigest()
        cached = self._users.get(key)
        if isinstance(cached, Caller):
            return cached
        spec: dict[str, Any] = {"token": credentials.token}
        if self.settings.audiences:
            spec["audiences"] = list(self.settings.audiences)
        review = await self._review(
            TOKEN_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}, spec
        )
        status = review.get("status") or {}
        user = status.get("user") or {}
        username = user.get("username")
        if not status.get("authenticated") or not isinstance(username, str) or not username:
            raise unauthenticated("the bearer token was not accepted by Kubernetes (TokenReview)")
        groups = tuple(g for g in user.get("groups") or () if isinstance(g, str))
        caller = Caller(username, groups)
        self._users.put(key, caller)
        return caller

    async def may(self, caller: Caller, verb: Verb, namespace: str) -> bool:
        if namespace == "":
            return shared_allows(self.policy, verb)
        settings = self.settings
        k8s_verb = settings.read_verb if verb is Verb.READ else settings.write_verb
        key = (caller.identity, caller.groups, namespace, k8s_verb)
        cached = self._decisions.get(key)
        if isinstance(cached, bool):
            return cached
        spec = {
            "user": caller.identity,
            "groups": list(caller.groups),
            "resourceAttributes": {
                "namespace": namespace,
                "verb": k8s_verb,
                "group": settings.group,
                "version": settings.version,
                "resource": settings.resource,
            },
        }
        review = await self._review(
            ACCESS_REVIEWS,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview"},
            spec,
        )
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed)
        return allowed

    async def readable(self, caller: Caller, named: frozenset[str]) -> frozenset[str]:
        # Kubernetes cannot list the namespaces a user may read: a list shows the namespaces it
        # names (already checked) and the shared one if the policy lets everyone read it.
        shared = {""} if shared_allows(self.policy, Verb.READ) else set()
        return frozenset(named) | shared

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _review(
        self, path: str, kind: dict[str, str], spec: dict[str, Any]
    ) -> dict[str, Any]:
        settings = self.settings
        try:
            own_token = settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            log.error("cannot read the service-account token %s: %s", settings.token_file, error)
            raise unavailable("the Kubernetes API server cannot be asked right now") from None
        try:
            async with self._client().post(
                settings.server + path,
                json={**kind, "spec": spec},
                headers={"Authorization": f"Bearer {own_token}"},
                timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds),
            ) as response:
                if response.status != 201 and response.status != 200:
                    log.error("%s answered %d", path, response.status)
                    raise unavailable("the Kubernetes API server refused a review; see the log")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.error("%s failed: %s", path, type(error).__name__)
            raise unavailable("the Kubernetes API server cannot be asked right now") from None
        return document if isinstance(document, dict) else {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            context: ssl.SSLContext | None = None
            if self.settings.server.startswith("https://"):
                ca = self.settings.ca_file
                context = ssl.create_default_context(cafile=str(ca) if ca else None)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context or True)
            )
        return self._session
