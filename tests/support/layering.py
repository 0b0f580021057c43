"""The dependency rules of the tree as data, and a checker that reads imports with :mod:`ast`.

Layers, bottom up (``docs/architecture.md``, "Dependency rules"):

* ``schemas``: contracts; imports no other package of ours and no I/O library;
* ``infra``: shared adapters; imports ``schemas`` only;
* the stages ``ingest``, ``processors``, ``projections``, ``simulator``: import ``schemas`` and ``infra``,
  never another stage;
* the tools ``deploy`` and ``wear``: compose the stages, may import any of them;
* ``tests`` and ``bench``: may import anything; nothing of the product imports them.

Every import counts: module level, inside a function, under ``TYPE_CHECKING``. Pure: the checker takes
source text and returns violations; only :func:`check_tree` reads files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALLOWED",
    "IO_LIBRARIES",
    "PACKAGES",
    "STAGES",
    "Violation",
    "check_module",
    "check_tree",
    "imports_of",
    "module_name",
]

STAGES = frozenset({"ingest", "processors", "projections", "simulator"})
_BASE = frozenset({"schemas", "infra"})
_PRODUCT = _BASE | STAGES | {"deploy", "wear"}

# Which of our packages each package may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "schemas": frozenset(),
    "infra": frozenset({"schemas"}),
    **{stage: _BASE for stage in STAGES},
    "deploy": _BASE | STAGES,
    "wear": _BASE | STAGES,
    "bench": _PRODUCT | {"tests"},
    "tests": _PRODUCT | {"bench"},
}
PACKAGES = frozenset(ALLOWED)

# What ``schemas`` may not import: network, database, web, process and file I/O.
IO_LIBRARIES = frozenset(
    {
        "aiohttp",
        "aiokafka",
        "asyncio",
        "asyncpg",
        "confluent_kafka",
        "faust",
        "h11",
        "http",
        "httpx",
        "io",
        "kafka",
        "os",
        "pathlib",
        "prometheus_client",
        "psycopg",
        "psycopg2",
        "requests",
        "select",
        "selectors",
        "shutil",
        "socket",
        "ssl",
        "starlette",
        "subprocess",
        "tempfile",
        "urllib.request",
        "uvicorn",
        "uvloop",
    }
)


@dataclass(frozen=True)
class Violation:
    """One import that breaks a rule."""

    module: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.rule}"


def module_name(path: Path, root: Path) -> str:
    """The dotted name of a module file below ``root`` (``pkg/__init__.py`` is ``pkg``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[str, int]]:
    """Every module ``source`` imports, absolute, with its line; relative imports resolved from ``module``."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or "", node.lineno
            else:
                base = package[: len(package) - node.level + 1]
                yield ".".join([*base, *([node.module] if node.module else [])]), node.lineno


def _matches(imported: str, names: Iterable[str]) -> str | None:
    return next((n for n in names if imported == n or imported.startswith(n + ".")), None)


def check_module(source: str, module: str, *, is_package: bool = False) -> list[Violation]:
    """The violations of one module of ours, named ``module`` (its first part is its package)."""
    package = module.split(".")[0]
    allowed = ALLOWED[package]
    found: list[Violation] = []
    for imported, line in imports_of(source, module, is_package=is_package):
        top = imported.split(".")[0]
        if top in PACKAGES and top != package and top not in allowed:
            found.append(Violation(module, line, imported, _rule(package, top)))
        elif package == "schemas" and (io := _matches(imported, IO_LIBRARIES)) is not None:
            found.append(Violation(module, line, imported, f"schemas/ imports no I/O library ({io})"))
    return found


def _rule(package: str, imported: str) -> str:
    if package in STAGES and imported in STAGES:
        return "no stage imports another stage"
    if imported in {"tests", "bench"}:
        return "the product never imports tests/ or bench/"
    allowed = ", ".join(sorted(ALLOWED[package])) or "nothing of ours"
    return f"{package}/ may import {allowed}"


def check_tree(root: Path) -> list[Violation]:
    """The violations of every module of every package below ``root``."""
    found: list[Violation] = []
    for package in sorted(PACKAGES):
        for path in sorted((root / package).rglob("*.py")):
            found += check_module(
                path.read_text(encoding="utf-8"),
                module_name(path, root),
                is_package=path.name == "__init__.py",
            )
    return found
