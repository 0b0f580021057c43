"""Every fixed local port lies below Linux's ephemeral port range.

A port inside ``net.ipv4.ip_local_port_range`` can be handed to a client's outgoing connection as its
source port; while the service is down, a client that keeps dialling it may even connect to itself and
hold the port, so the service cannot bind when it restarts. Keeping every fixed port below the range
removes the problem without reserving ports (which needs root).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deploy import kafka_local, postgres_local
from infra.settings import PostgresSettings
from ingest.settings import IngestSettings
from processors.settings import ProcessorsSettings
from projections.settings import ProjectionsSettings
from simulator.settings import SimulatorSettings

pytestmark = pytest.mark.unit

LINUX_DEFAULT_EPHEMERAL_LOW = 32768  # net.ipv4.ip_local_port_range defaults to 32768-60999


def _fields_default(model: type, name: str) -> int:
    default = model.model_fields[name].default  # type: ignore[attr-defined]
    assert isinstance(default, int)
    return default


def fixed_ports(tmp_path: Path) -> dict[str, int]:
    """Every port our launchers and settings fix by default, by what uses it."""
    ports: dict[str, int] = {}
    for node in [kafka_local.single_node(), *kafka_local.cluster_nodes()]:
        ports[f"kafka {node.home.parent.name}/{node.home.name} broker"] = node.broker_port
        ports[f"kafka {node.home.parent.name}/{node.home.name} controller"] = node.controller_port
    ports["postgres (launcher)"] = postgres_local.PORT
    url = str(PostgresSettings.model_fields["database_url"].default)
    ports["postgres (DATABASE_URL default)"] = urlsplit(url).port or 5432
    ports["ingest"] = _fields_default(IngestSettings, "port")
    ports["query api"] = _fields_default(ProjectionsSettings, "api_port")
    ports["projections metrics"] = _fields_default(ProjectionsSettings, "metrics_port")
    ports["processors metrics"] = _fields_default(ProcessorsSettings, "metrics_port")
    ports["simulator"] = _fields_default(SimulatorSettings, "port")
    return ports


def _ephemeral_low() -> int:
    """The low end of this machine's ephemeral range, or Linux's default where /proc does not say."""
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not range_file.exists():
        return LINUX_DEFAULT_EPHEMERAL_LOW
    return min(int(range_file.read_text().split()[0]), LINUX_DEFAULT_EPHEMERAL_LOW)


def test_every_fixed_port_is_below_the_ephemeral_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_RUN_DIR", str(tmp_path))
    low = _ephemeral_low()
    ports = fixed_ports(tmp_path)
    assert len(ports) >= 13, ports
    inside = {name: port for name, port in ports.items() if port >= low}
    assert not inside, f"ports at or above {low} (the ephemeral range): {inside}"


def test_fixed_ports_do_not_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_RUN_DIR", str(tmp_path))
    ports = fixed_ports(tmp_path)
    del ports["postgres (DATABASE_URL default)"]  # the launcher's port, by design (test below)
    assert len(set(ports.values())) == len(ports), ports


def test_the_launcher_and_the_default_url_agree_on_postgres(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_RUN_DIR", str(tmp_path))
    ports = fixed_ports(tmp_path)
    assert ports["postgres (launcher)"] == ports["postgres (DATABASE_URL default)"]
    assert str(PostgresSettings.model_fields["database_url"].default) == postgres_local.LOCAL_DATABASE_URL
