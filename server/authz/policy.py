"""The multi-user policy file (`--authz-policy FILE`, YAML or JSON): parse and check it. Pure
apart from reading the policy file, its tokens file and the Kubernetes defaults from the
environment.

Every problem is a `PolicyError` naming the file and the line (docs/security.md "Multi-user
mode" documents the keys). Bearer tokens are kept only as SHA-256 digests and never appear in
a message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Shared = Literal["none", "read", "write"]
SHARED_CHOICES: tuple[Shared, ...] = ("none", "read", "write")
DEFAULT_IDENTITY_HEADER = "kubeflow-userid"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOP_KEYS = frozenset(
    {"authority", "identity_header", "identity_prefix", "tokens_file", "namespaces", "shared"}
    | {"kubernetes"}
)
KUBERNETES_KEYS = frozenset(
    {"server", "token_file", "ca_file", "audiences", "cache_seconds", "timeout_seconds"}
    | {"group", "version", "resource", "read_verb", "write_verb"}
)


class PolicyError(ValueError):
    """The policy cannot be used; the message starts with "FILE:LINE: "."""


def token_digest(token: str) -> str:
    """How a bearer token is kept and looked up: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Rights:
    """Who may read and who may write one namespace (a writer may also read)."""

    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """`authority: kubernetes`: TokenReview and SubjectAccessReview on this API server."""

    server: str
    token_file: Path
    ca_file: Path | None
    audiences: tuple[str, ...] = ()
    cache_seconds: float = 10.0
    timeout_seconds: float = 5.0
    group: str = "pipelines.kubeflow.org"
    version: str = "v1beta1"
    resource: str = "runs"
    read_verb: str = "list"
    write_verb: str = "create"


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy. `kubernetes` set: the Kubernetes API server decides (tokens and rights);
    else `tokens` and `namespaces` do."""

    source: Path
    identity_header: str = DEFAULT_IDENTITY_HEADER
    identity_prefix: str = ""
    #: SHA-256 hex digest of a bearer token → the identity it stands for.
    tokens: Mapping[str, str] = field(default_factory=dict)
    namespaces: Mapping[str, Rights] = field(default_factory=dict)
    #: what any authenticated caller may do with tasks in the empty (shared) namespace.
    shared: Shared = "none"
    kubernetes: KubernetesSettings | None = None

    @property
    def accepts_tokens(self) -> bool:
        return self.kubernetes is not None or bool(self.tokens)


class _Mapping(dict[Any, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise _LineError(line, f"keys must be strings, got {key!r}")
        if key in mapping:
            raise _LineError(line, f'"{key}" appears twice')
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = line
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _LineError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_policy(path: Path, env: Mapping[str, str] | None = None) -> Policy:
    """Read and check the policy at `path` (and its tokens file); PolicyError if unusable."""
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyError(f"{path}: cannot read the policy: {_reason(error)}") from None
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        if not isinstance(document, _Mapping):
            raise _LineError(1, "the policy must be a mapping (YAML or a JSON object)")
        return _policy(path, document, env)
    except _LineError as problem:
        raise PolicyError(f"{path}:{problem.line}: {problem.message}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise PolicyError(f"{path}:{line}: not valid YAML or JSON: {error.problem}") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{path}:1: not valid YAML or JSON: {error}") from None


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


def _policy(path: Path, document: _Mapping, env: Mapping[str, str]) -> Policy:
    _known_keys(document, TOP_KEYS, "")
    authority = _string(document, "authority", "policy")
    if authority not in ("policy", "kubernetes"):
        raise _LineError(_line(document, "authority"), 'authority must be "policy" or "kubernetes"')
    header = _string(document, "identity_header", DEFAULT_IDENTITY_HEADER).lower()
    if not header or not header.replace("-", "").replace("_", "").isalnum():
        raise _LineError(_line(document, "identity_header"), "identity_header: not a header name")
    if header == "authorization" or header.startswith("grpc-"):
        raise _LineError(
            _line(document, "identity_header"), f"identity_header: {header} is reserved"
        )
    shared = _string(document, "shared", "none")
    if shared not in SHARED_CHOICES:
        raise _LineError(_line(document, "shared"), "shared must be none, read or write")
    policy = Policy(
        source=path,
        identity_header=header,
        identity_prefix=_string(document, "identity_prefix", ""),
        shared=shared,
    )
    if authority == "kubernetes":
        for key in ("namespaces", "tokens_file"):
            if key in document:
                raise _LineError(
                    _line(document, key), f"{key}: not used with authority: kubernetes"
                )
        kubernetes = _kubernetes(path, document, env)
        return Policy(
            path, policy.identity_header, policy.identity_prefix, {}, {}, policy.shared, kubernetes
        )
    tokens: dict[str, str] = {}
    if "tokens_file" in document:
        tokens_path = path.parent / _string(document, "tokens_file", "")
        tokens = load_tokens(tokens_path, _line(document, "tokens_file"), path)
    return Policy(
        path,
        policy.identity_header,
        policy.identity_prefix,
        tokens,
        _namespaces(document),
        policy.shared,
    )


def load_tokens(path: Path, line: int = 0, policy_path: Path | None = None) -> dict[str, str]:
    """A tokens file: lines "TOKEN IDENTITY"; blank lines and lines starting with # skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        if policy_path is not None:
            raise _LineError(line, f"tokens_file {path}: {_reason(error)}") from None
        raise PolicyError(f"{path}: {_reason(error)}") from None
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if len(parts) != 2:
            # The line holds a secret: say what is wrong, never what it says.
            raise PolicyError(f"{path}:{number}: expected two words, TOKEN IDENTITY")
        digest = token_digest(parts[0])
        if digest in tokens:
            raise PolicyError(f"{path}:{number}: this token appears on an earlier line too")
        tokens[digest] = parts[1]
    return tokens


def _namespaces(document: _Mapping) -> dict[str, Rights]:
    if "namespaces" not in document:
        return {}
    section = document["namespaces"]
    if section is None:
        return {}
    if not isinstance(section, _Mapping):
        raise _LineError(_line(document, "namespaces"), "namespaces must be a mapping")
    rights: dict[str, Rights] = {}
    for namespace, entry in section.items():
        line = section.lines[namespace]
        if namespace == "":
            raise _LineError(line, 'namespaces: use "shared" for the empty namespace')
        if entry is None:
            entry = _Mapping()
            entry.lines = {}
        if not isinstance(entry, _Mapping):
            raise _LineError(line, f"namespaces.{namespace} must be a mapping with read and write")
        _known_keys(entry, frozenset({"read", "write"}), f"namespaces.{namespace}.")
        rights[namespace] = Rights(
            read=_identities(entry, "read", namespace, line),
            write=_identities(entry, "write", namespace, line),
        )
    return rights


def _identities(entry: _Mapping, key: str, namespace: str, line: int) -> frozenset[str]:
    value = entry.get(key)
    if value is None:
        return frozenset()
    where = entry.lines.get(key, line)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _LineError(where, f"namespaces.{namespace}.{key} must be a list of identities")
    return frozenset(value)


def _kubernetes(path: Path, document: _Mapping, env: Mapping[str, str]) -> KubernetesSettings:
    section = document.get("kubernetes")
    line = (
        _line(document, "kubernetes") if "kubernetes" in document else _line(document, "authority")
    )
    if section is None:
        section = _Mapping()
        section.line = line
        section.lines = {}
    if not isinstance(section, _Mapping):
        raise _LineError(line, "kubernetes must be a mapping")
    _known_keys(section, KUBERNETES_KEYS, "kubernetes.")
    server = _string(section, "server", "")
    if not server:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise _LineError(
                line,
                "kubernetes.server: not set, and KUBERNETES_SERVICE_HOST is not set either "
                "(taskgate is not running in a pod)",
            )
        server = f"https://{f'[{host}]' if ':' in host else host}:{port}"
    if not server.startswith(("https://", "http://")):
        raise _LineError(_line(section, "server"), "kubernetes.server must be an http(s):// URL")
    ca = _string(section, "ca_file", "")
    default_ca = SERVICE_ACCOUNT_DIR / "ca.crt"
    audiences = section.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise _LineError(_line(section, "audiences"), "kubernetes.audiences must be a list")
    return KubernetesSettings(
        server=server.rstrip("/"),
        token_file=path.parent / _string(section, "token_file", str(SERVICE_ACCOUNT_DIR / "token")),
        ca_file=(path.parent / ca) if ca else (default_ca if server.startswith("https") else None),
        audiences=tuple(audiences),
        cache_seconds=_number(section, "cache_seconds", 10.0),
        timeout_seconds=_number(section, "timeout_seconds", 5.0) or 5.0,
        group=_string(section, "group", "pipelines.kubeflow.org"),
        version=_string(section, "version", "v1beta1"),
        resource=_string(section, "resource", "runs"),
        read_verb=_string(section, "read_verb", "list"),
        write_verb=_string(section, "write_verb", "create"),
    )


def _known_keys(mapping: _Mapping, known: frozenset[str], prefix: str) -> None:
    for key in mapping:
        if key not in known:
            raise _LineError(mapping.lines[key], f'unknown key "{prefix}{key}"')


def _line(mapping: _Mapping, key: str) -> int:
    return mapping.lines.get(key, mapping.line)


def _string(mapping: _Mapping, key: str, default: str) -> str:
    value = mapping.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _LineError(_line(mapping, key), f"{key} must be a string")
    return value


def _number(mapping: _Mapping, key: str, default: float) -> float:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _LineError(_line(mapping, key), f"{key} must be a number of seconds, 0 or more")
    return float(value)
