"""The OpenAPI document: kept in the repository, served as it is, and documenting every route."""

from __future__ import annotations

import re

import httpx
import orjson
from starlette.routing import Route

from infra.settings import KafkaSettings, PostgresSettings
from projections.__main__ import main
from projections.query.api import OPENAPI_PATH, create_api, query_routes
from projections.query.openapi import build_spec, render_spec
from projections.settings import ProjectionsSettings, Settings


def test_the_file_in_the_repository_is_what_the_builder_makes() -> None:
    assert OPENAPI_PATH.read_bytes() == render_spec(), "run: python -m projections openapi"
    assert main(["openapi", "--check"]) == 0


async def test_the_served_document_is_the_file() -> None:
    app = create_api(Settings(ProjectionsSettings(), KafkaSettings(), PostgresSettings()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content == OPENAPI_PATH.read_bytes()


def test_every_route_is_documented_and_every_documented_path_is_a_route() -> None:
    spec = build_spec()
    assert spec["openapi"] == "3.1.0"
    routes = {route.path: route.methods for route in query_routes() if isinstance(route, Route)}
    assert set(routes) == set(spec["paths"])
    for path, methods in routes.items():
        assert methods is not None
        documented = {method.upper() for method in spec["paths"][path]}
        assert documented == methods - {"HEAD"}, path
        for operation in spec["paths"][path].values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path
            placeholders = set(re.findall(r"{(\w+)}", path))
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert placeholders == declared, path


def test_the_units_and_time_semantics_are_stated() -> None:
    text = orjson.dumps(build_spec()).decode()
    assert "without an offset is read as UTC" in text
    wear = build_spec()["components"]["schemas"]["WearMetrics"]
    units = {
        name: metric["description"] for name, metric in wear["properties"]["metrics"]["properties"].items()
    }
    assert units["distance"].startswith("distance, metres")
    assert units["calories"].startswith("energy, kcal")
    assert units["hrv_rmssd"].endswith("milliseconds")
    assert wear["additionalProperties"] is False
    assert set(wear["required"]) == {"timestamp", "device_id", "source", "metrics"}
    assert "stress" in wear["properties"]["metrics"]["description"]
    limit = next(
        p
        for p in build_spec()["paths"]["/v1/data/{user_id}/sleep"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert (limit["schema"]["maximum"], limit["schema"]["default"]) == (25, 25)
    assert "never clamped" in limit["description"]


def test_every_operation_documents_the_error_shape_and_its_statuses() -> None:
    for path, item in build_spec()["paths"].items():
        for operation in item.values():
            if path == "/openapi.json":
                assert operation["security"] == []
                continue
            for status in ("400", "401", "403", "404", "429", "500", "503"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
            assert "304" in operation["responses"]
