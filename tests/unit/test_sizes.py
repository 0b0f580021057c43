"""No product module over 400 lines unless it is one idea, no function over 60 lines unless it is data.

The checker reads every ``.py`` file of the product packages with ``ast``: a module's size is its line
count, a function's is from its ``def`` line to its last line (docstring included), for every function
and method at any depth, named ``path::Outer.inner``. ``LONG_MODULES`` and ``LONG_FUNCTIONS`` are the
record of what may stay longer, each with its reason; a test fails when an entry is no longer needed,
so the lists only shrink. The last tests show the checker catching a long function and a long module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "infra", "ingest", "processors", "projections", "simulator", "deploy", "wear")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

_TYPER_COMMAND = (
    "a typer command declaration: its parameters (options with their help) and docstring are the"
    " command's help, data; the code in it is a few lines that call the command's functions"
)

LONG_MODULES: dict[str, str] = {}
"""Modules that may exceed ``MAX_MODULE_LINES`` because they are one idea, with the reason."""

LONG_FUNCTIONS: dict[str, str] = {
    "wear/export.py::register": _TYPER_COMMAND + " (wear export, nested below)",
    "wear/export.py::register.export": _TYPER_COMMAND,
    "wear/replay.py::rebuild": _TYPER_COMMAND,
    "wear/tokens.py::register": _TYPER_COMMAND + " (create, list, revoke)",
    "wear/users.py::register": _TYPER_COMMAND + " (list, show, disconnect, erase)",
}
"""Functions that may exceed ``MAX_FUNCTION_LINES`` because they are data, with the reason."""


def module_lines(sources: Mapping[str, str], limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """``{module: lines}`` of every module of ``sources`` longer than ``limit`` lines."""
    sizes = {module: len(source.splitlines()) for module, source in sources.items()}
    return {module: size for module, size in sizes.items() if size > limit}


def _functions(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}.{child.name}" if prefix else child.name
            if not isinstance(child, ast.ClassDef):
                yield name, (child.end_lineno or child.lineno) - child.lineno + 1
            yield from _functions(child, name)
        else:
            yield from _functions(child, prefix)


def function_lines(sources: Mapping[str, str], limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``{module::qualified name: lines}`` of every function of ``sources`` longer than ``limit`` lines."""
    found = {}
    for module, source in sources.items():
        for name, size in _functions(ast.parse(source, module), ""):
            if size > limit:
                found[f"{module}::{name}"] = size
    return found


def _product_sources() -> dict[str, str]:
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_no_module_is_over_the_limit_unless_listed() -> None:
    assert {m: n for m, n in module_lines(_product_sources()).items() if m not in LONG_MODULES} == {}


def test_no_function_is_over_the_limit_unless_listed() -> None:
    assert {f: n for f, n in function_lines(_product_sources()).items() if f not in LONG_FUNCTIONS} == {}


def test_every_listed_exception_is_still_needed_and_has_a_reason() -> None:
    sources = _product_sources()
    assert set(LONG_MODULES) - set(module_lines(sources)) == set()
    assert set(LONG_FUNCTIONS) - set(function_lines(sources)) == set()
    assert all(reason.strip() for reason in (*LONG_MODULES.values(), *LONG_FUNCTIONS.values()))


# The checker itself, on deliberately broken inputs.


def _function(name: str, body_lines: int, indent: str = "") -> str:
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines))
    return f"{indent}def {name}() -> None:\n{body}"


def test_a_function_over_the_limit_is_caught_at_any_depth() -> None:
    source = (
        _function("short", 59)  # 60 lines with its def: at the limit
        + _function("long", 60)  # 61 lines
        + "class Worker:\n"
        + _function("run", 70, "    ")
        + "def outer() -> None:\n"
        + _function("inner", 61, "    ")
    )
    assert function_lines({"processors/x.py": source}) == {
        "processors/x.py::long": 61,
        "processors/x.py::Worker.run": 71,
        "processors/x.py::outer": 63,
        "processors/x.py::outer.inner": 62,
    }


def test_an_async_function_and_its_docstring_count() -> None:
    source = 'async def handle() -> None:\n    """Doc\n\n    more doc.\n    """\n' + "    pass\n" * 56
    assert function_lines({"ingest/x.py": source}) == {"ingest/x.py::handle": 61}  # 1 + 4 + 56


def test_a_module_over_the_limit_is_caught() -> None:
    at_limit, over = "x = 1\n" * 400, "x = 1\n" * 401
    assert module_lines({"infra/a.py": at_limit, "infra/b.py": over}) == {"infra/b.py": 401}


def test_an_unlisted_long_function_fails_the_tree_check() -> None:
    found = function_lines({"wear/new.py": _function("register", 80)})
    assert {f: n for f, n in found.items() if f not in LONG_FUNCTIONS} == {"wear/new.py::register": 81}
