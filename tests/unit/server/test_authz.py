"""Multi-user mode's pure parts: the policy file, credentials, decisions (server/authz)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from taskgate.server.authz.access import (
    Caller,
    PolicyAuthority,
    Verb,
    acting_as,
    named_namespaces,
    policy_allows,
    restrict_list,
)
from taskgate.server.authz.credentials import CredentialsError, read_credentials
from taskgate.server.authz.kubernetes import TtlCache
from taskgate.server.authz.policy import PolicyError, load_policy
from taskgate.server.errors import ServiceError
from taskgate.store.records import Column, Condition, Op, TaskQuery

POLICY = """\
identity_header: Kubeflow-UserId
identity_prefix: "accounts.google.com:"
tokens_file: tokens.txt
namespaces:
  alice: {read: [bob], write: [alice]}
  bob:
    read: [bob]
    write: [bob]
shared: read
"""
TOKENS = "# comment\n\ntok-alice alice\n  tok-bob   bob  \n"


def write(tmp_path: Path, policy: str, tokens: str = TOKENS, name: str = "policy.yaml") -> Path:
    (tmp_path / "tokens.txt").write_text(tokens)
    path = tmp_path / name
    path.write_text(policy)
    return path


def test_a_yaml_policy(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, POLICY))
    assert policy.identity_header == "kubeflow-userid"
    assert policy.identity_prefix == "accounts.google.com:"
    assert sorted(policy.tokens.values()) == ["alice", "bob"]
    assert "tok-alice" not in repr(policy)  # only digests are kept
    assert policy.namespaces["alice"].write == {"alice"}
    assert policy.shared == "read"
    assert policy.kubernetes is None


def test_a_json_policy(tmp_path: Path) -> None:
    document = {"namespaces": {"a": {"read": ["x"]}}, "shared": "write"}
    policy = load_policy(write(tmp_path, json.dumps(document, indent=2), name="p.json"))
    assert policy.identity_header == "kubeflow-userid"
    assert policy.namespaces["a"].read == {"x"}
    assert policy.tokens == {}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("shared: maybe\n", 1, "shared must be none, read or write"),
        ("namespaces:\n  a: {read: [x]}\n  a: {read: [y]}\n", 3, '"a" appears twice'),
        ("namespaces:\n  a:\n    read: x\n", 3, "namespaces.a.read must be a list"),
        ("namespaces:\n  a:\n    reed: [x]\n", 3, 'unknown key "namespaces.a.reed"'),
        ("\nnamespaces:\n  '': {read: [x]}\n", 3, 'use "shared" for the empty namespace'),
        ("shared: read\nbogus: 1\n", 2, 'unknown key "bogus"'),
        ("namespaces: [a, b]\n", 1, "namespaces must be a mapping"),
        ("a: [\n", 2, "not valid YAML or JSON"),
        ("- just a list\n", 1, "must be a mapping"),
        ("authority: ldap\n", 1, 'authority must be "policy" or "kubernetes"'),
        ("tokens_file: missing.txt\n", 1, "tokens_file"),
        ("identity_header: authorization\n", 1, "reserved"),
        ("authority: kubernetes\n", 1, "KUBERNETES_SERVICE_HOST is not set"),
        ("authority: kubernetes\nnamespaces: {}\n", 2, "not used with authority: kubernetes"),
    ],
)
def test_a_bad_policy_names_the_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as failure:
        load_policy(path, env={})
    assert str(failure.value).startswith(f"{path}:{line}: ")
    assert words in str(failure.value)


def test_a_bad_tokens_file_never_shows_the_token(tmp_path: Path) -> None:
    path = write(tmp_path, "tokens_file: tokens.txt\n", tokens="ok alice\nsecret-token\n")
    with pytest.raises(PolicyError) as failure:
        load_policy(path)
    assert str(failure.value) == f"{tmp_path / 'tokens.txt'}:2: expected two words, TOKEN IDENTITY"


def test_a_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.yaml: cannot read the policy"):
        load_policy(tmp_path / "nope.yaml")


def test_kubernetes_defaults_come_from_the_pod(tmp_path: Path) -> None:
    path = write(tmp_path, "authority: kubernetes\nshared: read\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    settings = load_policy(path, env=env).kubernetes
    assert settings is not None
    assert settings.server == "https://10.0.0.1:6443"
    assert str(settings.token_file) == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert (settings.group, settings.version, settings.resource) == (
        "pipelines.kubeflow.org",
        "v1beta1",
        "runs",
    )
    assert (settings.read_verb, settings.write_verb) == ("list", "create")


HEADER = "kubeflow-userid"


@pytest.mark.parametrize(
    ("metadata", "tokens", "expected"),
    [
        ([(HEADER, "p:ann")], False, ("ann", None)),
        ([(HEADER, "p:ann"), ("authorization", "Bearer t")], True, (None, "t")),
        ([(HEADER, "p:ann"), ("authorization", "Bearer t")], False, ("ann", None)),
        ([(HEADER, "p:ann"), ("authorization", "Basic eDp5")], True, ("ann", None)),
        ([("authorization", "bearer  t ")], True, (None, "t")),
        ([], True, "no identity: the call has no kubeflow-userid header or an `authorization"),
        ([], False, "no identity: the call has no kubeflow-userid header"),
        ([(HEADER, "ann")], False, 'must start with "p:"'),
        ([(HEADER, "p:")], False, "header is empty"),
        ([(HEADER, "p:a"), (HEADER, "p:b")], False, "more than once"),
        ([("authorization", "Bearer ")], True, "the bearer token is empty"),
        ([("authorization", "Bearer a"), ("authorization", "Bearer b")], True, "more than one"),
    ],
)
def test_credentials(
    metadata: list[tuple[str, str]], tokens: bool, expected: tuple[str | None, ...] | str
) -> None:
    if isinstance(expected, str):
        with pytest.raises(CredentialsError) as failure:
            read_credentials(metadata, HEADER, "p:", accept_tokens=tokens)
        assert expected in str(failure.value)
        return
    found = read_credentials(metadata, HEADER, "p:", accept_tokens=tokens)
    assert (found.header_identity, found.token) == expected


@pytest.mark.parametrize(
    ("identity", "verb", "namespace", "allowed"),
    [
        ("alice", Verb.WRITE, "alice", True),
        ("alice", Verb.READ, "alice", True),  # a writer may read
        ("bob", Verb.READ, "alice", True),
        ("bob", Verb.WRITE, "alice", False),
        ("carol", Verb.READ, "alice", False),
        ("carol", Verb.READ, "nowhere", False),
        ("carol", Verb.READ, "", True),  # shared: read
        ("alice", Verb.WRITE, "", False),
    ],
)
def test_policy_decisions(
    tmp_path: Path, identity: str, verb: Verb, namespace: str, allowed: bool
) -> None:
    policy = load_policy(write(tmp_path, POLICY))
    assert policy_allows(policy, identity, verb, namespace) is allowed


async def test_tokens_identify_and_unknown_tokens_do_not(tmp_path: Path) -> None:
    authority = PolicyAuthority(load_policy(write(tmp_path, POLICY)))
    caller = await authority.authenticate([("authorization", "Bearer tok-alice")])
    assert caller.identity == "alice"
    with pytest.raises(ServiceError) as failure:
        await authority.authenticate([("authorization", "Bearer tok-mallory")])
    assert failure.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "tok-mallory" not in failure.value.chain
    assert await authority.readable(Caller("bob"), frozenset()) == {"alice", "bob", ""}


def test_named_namespaces() -> None:
    conditions = [
        Condition(Column.NAMESPACE, Op.EQ, "a"),
        Condition(Column.NAMESPACE, Op.IN, ("b", "c")),
        Condition(Column.NAMESPACE, Op.NE, "d"),
        Condition(Column.NAMESPACE, Op.SUBSTRING, "e"),
        Condition(Column.RUN_ID, Op.EQ, "f"),
    ]
    assert named_namespaces(conditions) == {"a", "b", "c"}


async def test_restrict_list_adds_the_readable_namespaces(tmp_path: Path) -> None:
    authority = PolicyAuthority(load_policy(write(tmp_path, POLICY)))
    query = TaskQuery(conditions=(Condition(Column.FINGERPRINT, Op.EQ, "f"),))
    assert await restrict_list(query) == query  # single-user mode: untouched
    with acting_as(Caller("carol"), authority):
        restricted = await restrict_list(query)
        assert restricted.conditions[-1] == Condition(Column.NAMESPACE, Op.IN, ("",))
        named = TaskQuery(conditions=(Condition(Column.NAMESPACE, Op.IN, ("", "alice")),))
        with pytest.raises(ServiceError) as failure:
            await restrict_list(named)
    assert failure.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert failure.value.external == 'carol may not read namespace "alice"'


def test_ttl_cache() -> None:
    now = [0.0]
    cache = TtlCache(10, now=lambda: now[0])
    cache.put("k", True)
    assert cache.get("k") is True
    now[0] = 10.0
    assert cache.get("k") is None
    TtlCache(0).put("k", 1)  # 0 seconds: nothing is kept
