"""The one-box HTTP edge routes query paths to the query API, the rest to ingest; both lifespans run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from deploy.edge import Edge


def _app(name: str, events: list[str]) -> Starlette:
    async def answer(request: Request) -> PlainTextResponse:
        return PlainTextResponse(name)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append(f"{name} up")
        yield
        events.append(f"{name} down")

    return Starlette(routes=[Route("/{path:path}", answer)], lifespan=lifespan)


async def test_paths_are_routed_by_prefix_and_both_lifespans_run() -> None:
    events: list[str] = []
    edge = Edge(_app("ingest", events), _app("query", events))
    async with (
        edge.ingest.router.lifespan_context(edge.ingest),
        edge.query.router.lifespan_context(edge.query),
    ):
        transport = httpx.ASGITransport(app=edge)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            for path, owner in [
                ("/v1/webhooks/whoop", "ingest"),
                ("/v1/oauth/authorize", "ingest"),
                ("/v1/pull/u1", "ingest"),
                ("/healthz", "ingest"),
                ("/v1/data/u1/sleep", "query"),
                ("/v1/whoop-cloud/data/u1/recovery/7", "query"),
                ("/v1/whoop/data/u1/cycles", "query"),
                ("/openapi.json", "query"),
                ("/v1/datax/u1", "ingest"),
            ]:
                assert (await client.get(path)).text == owner, path
    assert events == ["ingest up", "query up", "query down", "ingest down"]


async def test_the_asgi_lifespan_protocol_starts_and_stops_both_apps() -> None:
    events: list[str] = []
    edge = Edge(_app("ingest", events), _app("query", events))
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return next(incoming)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    await edge({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["ingest up", "query up", "query down", "ingest down"]
