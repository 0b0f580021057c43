"""The projection core does not load the query API: imported in a fresh interpreter, Starlette stays out."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

_CORE = (
    "projections",
    "projections.rows",
    "projections.fold",
    "projections.activity",
    "projections.decode",
    "projections.store",
    "projections.runner",
    "projections.rebuild",
)


def _loaded_after(modules: tuple[str, ...]) -> set[str]:
    script = (
        "import importlib, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_importing_the_projection_core_does_not_import_starlette_or_the_query_api() -> None:
    loaded = _loaded_after(_CORE)
    assert set(_CORE) <= loaded
    assert "starlette" not in loaded
    assert not any(name.startswith("projections.query") for name in loaded)


def test_the_check_sees_starlette_when_the_query_api_is_imported() -> None:
    assert "starlette" in _loaded_after(("projections.query.api",))
