"""The dependency rules hold over the whole tree, and the checker catches each kind of break."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.layering import PACKAGES, check_module, check_tree, imports_of, module_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_the_tree_keeps_the_dependency_rules() -> None:
    violations = check_tree(ROOT)
    assert not violations, "\n".join(map(str, violations))


def test_every_package_of_the_tree_is_checked() -> None:
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert found == PACKAGES


def test_the_tree_walk_reads_modules() -> None:
    # a walk that reads nothing would pass the rules test above
    assert module_name(ROOT / "processors" / "resources.py", ROOT) == "processors.resources"
    assert module_name(ROOT / "schemas" / "__init__.py", ROOT) == "schemas"
    assert len(list((ROOT / "processors").rglob("*.py"))) > 10


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("processors.fetcher", "from ingest.store import Connection\n", "no stage imports another stage"),
        ("ingest.app", "import projections.api\n", "no stage imports another stage"),
        ("projections.runner", "def f():\n    from processors import normalize\n", "no stage imports"),
        (
            "simulator.app",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ingest\n",
            "stage",
        ),
        ("schemas.topics", "import aiokafka\n", "schemas/ imports no I/O library (aiokafka)"),
        ("schemas.serde", "from asyncpg import Record\n", "no I/O library (asyncpg)"),
        ("schemas.events", "import urllib.request\n", "no I/O library (urllib.request)"),
        ("schemas.keys", "from starlette.requests import Request\n", "no I/O library (starlette)"),
        (
            "schemas.records",
            "from infra.settings import KafkaSettings\n",
            "schemas/ may import nothing of ours",
        ),
        ("infra.kafka", "from processors.appender import Appender\n", "infra/ may import schemas"),
        ("infra.db", "import simulator.clock\n", "infra/ may import schemas"),
        ("wear.cli", "from tests.support import ingest_fakes\n", "the product never imports tests/"),
        ("deploy.run", "from bench import report\n", "the product never imports"),
    ],
)
def test_the_checker_fails_on_a_forbidden_import(module: str, source: str, rule: str) -> None:
    violations = check_module(source, module)
    assert len(violations) == 1
    assert rule in violations[0].rule
    assert str(violations[0]).startswith(f"{module}:")


# one module of each layer, importing what its layer allows
ALLOWED_SOURCES = {
    "processors.fetcher": "from infra.kafka import make_producer\nfrom schemas.records import Item\n"
    "from processors.clock import Clock\nfrom . import normalize\n",
    "schemas.serde": "import msgspec\nimport orjson\nfrom urllib.parse import quote\n",
    "infra.kafka": "import aiokafka\nfrom schemas.topics import TOPICS\n",
    "wear.dlq": "from processors.resources import DocumentLog\nfrom projections import store\n",
    "deploy.run": "import ingest\nimport processors\nimport projections\nimport simulator\n",
    "tests.unit.x": "import bench.report\nfrom deploy import run\nfrom ingest import app\n",
}


@pytest.mark.parametrize("module", sorted(ALLOWED_SOURCES))
def test_the_checker_allows_what_the_layers_allow(module: str) -> None:
    assert check_module(ALLOWED_SOURCES[module], module) == []


def test_relative_imports_resolve_from_the_module() -> None:
    source = "from . import a\nfrom .b import c\nfrom .. import d\n"
    assert [m for m, _ in imports_of(source, "projections.query.api")] == [
        "projections.query",
        "projections.query.b",
        "projections",
    ]
    assert [m for m, _ in imports_of("from . import a\n", "projections.query", is_package=True)] == [
        "projections.query"
    ]


def test_a_relative_import_cannot_hide_a_forbidden_one() -> None:
    violations = check_module("import os\nfrom ...processors import work\n", "ingest.sub.mod")
    assert [(v.line, v.imported) for v in violations] == [(2, "processors")]


def test_the_tree_check_finds_a_broken_module_in_a_package(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text('"""ok."""\n')
    (tmp_path / "processors" / "query").mkdir()
    (tmp_path / "processors" / "query" / "__init__.py").write_text("from ingest import app\n")
    (tmp_path / "schemas" / "topics.py").write_text("import msgspec\nimport socket\n")
    found = {(v.module, v.imported) for v in check_tree(tmp_path)}
    assert found == {("processors.query", "ingest"), ("schemas.topics", "socket")}
