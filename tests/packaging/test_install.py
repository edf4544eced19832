"""The installed package, as a user gets it: the wheel's contents, and taskgate installed beside
the Kubeflow Pipelines SDK in one virtual environment.

These build a wheel and install from the package index, so they run only when selected
(`pytest -m packaging`); .ci/run does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
#: The KFP SDK release this must install beside (it wants protobuf>=6.31.1,<7).
KFP = "kfp==2.17.3"


def _env() -> dict[str, str]:
    """The environment without a constraints file: resolve as a user's pip would."""
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CONSTRAINT", "PYTHONPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=_env(), cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT)
    (built,) = out.glob("taskgate-*.whl")
    return built


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"taskgate"}
    for shipped in (
        "taskgate/py.typed",
        "taskgate/__main__.py",
        "taskgate/api/task.proto",
        "taskgate/api/task_pb2.pyi",
        "taskgate/store/migrations/0001_create_tasks.sql",
    ):
        assert shipped in names
    assert not [n for n in names if n.startswith("taskgate/tests") or "/__pycache__/" in n]


def test_installs_beside_the_kfp_sdk(wheel: Path, tmp_path: Path) -> None:
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel, KFP)
    _run(python, "-m", "pip", "check")
    versions = _run(
        python, "-c", "import kfp, google.protobuf as p; print(kfp.__version__, p.__version__)"
    )
    kfp_version, protobuf_version = versions.split()
    assert kfp_version == KFP.split("==")[1]
    assert protobuf_version.startswith("6.")  # the SDK's range: taskgate's code must load on it
    # Everything taskgate imports at run time loads on that protobuf, beside kfp.
    _run(python, "-c", "import kfp, taskgate.server.lifecycle, taskgate.gateway.standalone")
    taskgate = tmp_path / "venv" / "bin" / "taskgate"
    assert "serve" in _run(taskgate, "--help")
    assert "--upstream" in _run(taskgate, "gateway", "--help")
    version = _run(taskgate, "--version").strip()
    assert (
        version
        == f"taskgate {_run(python, '-c', 'import taskgate; print(taskgate.__version__)').strip()}"
    )
    assert "usage: taskgate" in _run(python, "-m", "taskgate", "--help", cwd=tmp_path)
