"""Every HTTP server of the pipeline is configured by ``infra.http_server.server_config``, from its settings.

The servers' behaviour under slow clients is tested on real sockets in
``tests/integration/test_slow_clients.py``; here, that each entry point applies its own limits.
"""

from __future__ import annotations

import pytest
import uvicorn
from starlette.applications import Starlette

from deploy.edge import Edge, edge_config
from infra.http_deadlines import DeadlineH11Protocol, DeadlineHttpToolsProtocol, limits_of
from infra.http_limits import HttpLimits
from infra.http_server import server_config
from infra.settings import KafkaSettings, PostgresSettings
from ingest.__main__ import server_config as ingest_server_config
from projections.__main__ import api_server
from projections.settings import ProjectionsSettings
from projections.settings import Settings as ProjectionsAppSettings
from simulator.__main__ import server_config as simulator_server_config
from simulator.settings import SimulatorSettings
from tests.support.ingest_fakes import make_settings

LIMITS = {"header_timeout_s": 3.5, "body_timeout_s": 4.5, "keep_alive_s": 7, "max_connections": 321}
EXPECTED = HttpLimits(3.5, 4.5, 7, 321)


def assert_limited(config: uvicorn.Config, limits: HttpLimits) -> None:
    assert config.http is DeadlineHttpToolsProtocol
    assert limits_of(config) == limits
    assert config.limit_concurrency == limits.max_connections
    assert config.timeout_keep_alive == limits.keep_alive_s
    assert config.ws == "none" and not config.server_header and not config.access_log
    assert config.proxy_headers is bool(limits.trusted_proxies)


def test_python_m_ingest_serves_under_the_ingest_limits() -> None:
    settings = make_settings(**LIMITS)
    config = ingest_server_config(settings, Starlette())
    assert_limited(config, EXPECTED)
    assert (config.host, config.port, config.lifespan) == ("127.0.0.1", 8000, "on")


def test_the_edge_serves_under_the_ingest_limits() -> None:
    settings = make_settings(**LIMITS)
    assert_limited(edge_config(settings, Edge(Starlette(), Starlette())), EXPECTED)


def test_the_query_api_serves_under_the_projections_limits() -> None:
    own = ProjectionsSettings(**LIMITS, api_port=8123)  # type: ignore[arg-type]
    server = api_server(ProjectionsAppSettings(own, KafkaSettings(), PostgresSettings()))
    assert_limited(server.config, EXPECTED)
    assert server.config.port == 8123


def test_the_simulator_serves_under_the_simulator_limits() -> None:
    settings = SimulatorSettings(**LIMITS)  # type: ignore[arg-type]
    assert_limited(simulator_server_config(Starlette(), settings), EXPECTED)


def test_the_limits_are_read_from_each_process_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    for prefix in ("INGEST", "PROJECTIONS", "SIMULATOR"):
        monkeypatch.setenv(f"{prefix}_HEADER_TIMEOUT_S", "2.5")
        monkeypatch.setenv(f"{prefix}_BODY_TIMEOUT_S", "3")
        monkeypatch.setenv(f"{prefix}_KEEP_ALIVE_S", "4")
        monkeypatch.setenv(f"{prefix}_MAX_CONNECTIONS", "50")
    from ingest.settings import IngestSettings

    for settings in (IngestSettings(), ProjectionsSettings(), SimulatorSettings()):
        assert settings.http_limits() == HttpLimits(2.5, 3.0, 4, 50)
    assert HttpLimits() == HttpLimits(10.0, 10.0, 5, 1000)  # the defaults


def test_trusted_proxies_turn_on_x_forwarded_for_for_them_only() -> None:
    limits = HttpLimits(trusted_proxies=("10.0.0.0/8",))
    config = server_config(Starlette(), host="127.0.0.1", port=0, limits=limits)
    assert config.proxy_headers and config.forwarded_allow_ips == ["10.0.0.0/8"]
    assert not server_config(Starlette(), host="127.0.0.1", port=0, limits=HttpLimits()).proxy_headers


def test_the_h11_variant_has_the_deadlines_too() -> None:
    config = server_config(Starlette(), host="127.0.0.1", port=0, limits=HttpLimits(), http="h11")
    assert config.http is DeadlineH11Protocol
