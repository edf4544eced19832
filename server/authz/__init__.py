"""Multi-user mode (`--authz-policy FILE`): identities, per-namespace rights, the gate.

policy.py parses the policy file; credentials.py reads identities from metadata; access.py holds
the decisions and the gate the call pipeline runs; kubernetes.py asks the Kubernetes API server.
This module composes them for `taskgate serve` (server/lifecycle.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from taskgate.gateway.app import GATEWAY
from taskgate.gateway.options import GatewayOptions
from taskgate.server.authz.access import Authority, Gate, PolicyAuthority
from taskgate.server.authz.policy import Policy, PolicyError, load_policy

log = logging.getLogger(__name__)


def authority_for(policy: Policy) -> Authority:
    """The authority a loaded policy asks for."""
    if policy.kubernetes is not None:
        from taskgate.server.authz.kubernetes import KubernetesAuthority

        return KubernetesAuthority(policy)
    return PolicyAuthority(policy)


def open_gate(path: Path | None) -> Gate | None:
    """The gate for the policy at `path` (None: single-user mode); PolicyError if unusable."""
    return None if path is None else Gate(authority_for(load_policy(path)))


def rest_options(options: GatewayOptions, gate: Gate | None) -> GatewayOptions:
    """The REST door forwards the policy's identity header as metadata too."""
    if gate is None:
        return options
    header = gate.authority.policy.identity_header
    return replace(options, forwarded_headers=options.forwarded_headers | {header})


class PolicyReloader:
    """SIGHUP: load the policy file again; if it cannot be used, keep the current one and log
    why. The next call is decided by the new policy; calls in flight finish under the old."""

    def __init__(self, gate: Gate, app: web.Application) -> None:
        self._gate = gate
        self._app = app

    def __call__(self) -> None:
        path = self._gate.authority.policy.source
        try:
            policy = load_policy(path)
        except PolicyError as error:
            log.error("kept the current multi-user policy: %s", error)
            return
        self._gate.replace(authority_for(policy))
        box = self._app[GATEWAY]
        box.state = replace(box.state, options=rest_options(box.state.options, self._gate))
        log.info("reloaded the multi-user policy from %s", path)


__all__ = ["Gate", "PolicyError", "PolicyReloader", "load_policy", "open_gate", "rest_options"]
