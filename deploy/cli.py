"""The typer commands behind ``python -m deploy`` (see ``deploy/__main__.py``)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from deploy import kafka_local
from deploy.postgres_local import LocalPostgres, PostgresLaunchError
from infra.migrations import apply_migrations
from infra.settings import KafkaSettings, PostgresSettings
from infra.topic_admin import ensure_topics
from schemas.topics import TOPICS

__all__ = ["main"]

app = typer.Typer(
    help="Local infrastructure of the WHOOP pipeline.", no_args_is_help=True, add_completion=False
)
kafka_app = typer.Typer(help="A Kafka 4.3 KRaft broker (or 3-node cluster) from Maven Central jars.")
postgres_app = typer.Typer(help="The project's own PostgreSQL cluster under run/postgres.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(postgres_app, name="postgres")
console = Console(stderr=True)

ClusterOption = Annotated[
    bool, typer.Option("--cluster", help="The 3-node cluster instead of the single broker.")
]


def _nodes(cluster: bool) -> list[kafka_local.Node]:
    return kafka_local.cluster_nodes() if cluster else [kafka_local.single_node()]


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(1)


@kafka_app.command("up")
def kafka_up(cluster: ClusterOption = False) -> None:
    """Start the broker(s) (idempotent) and wait until they serve."""
    with console.status("starting Kafka" + (" cluster" if cluster else "")):
        try:
            kafka_local.start_nodes(_nodes(cluster))
        except kafka_local.KafkaLaunchError as exc:
            raise _fail(str(exc)) from exc
    bootstrap = kafka_local.CLUSTER_BOOTSTRAP if cluster else kafka_local.SINGLE_BOOTSTRAP
    console.print(f"Kafka ready: KAFKA_BOOTSTRAP_SERVERS={bootstrap}")


@kafka_app.command("down")
def kafka_down(cluster: ClusterOption = False) -> None:
    """Stop the broker(s) with a controlled shutdown."""
    kafka_local.stop_nodes(_nodes(cluster))


@kafka_app.command("status")
def kafka_status(cluster: ClusterOption = False) -> None:
    """Show each node's pid and whether it answers; exit 1 when one does not."""
    table = Table("node", "address", "pid", "serving")
    rows = kafka_local.status(_nodes(cluster))
    for node, pid, serving in rows:
        table.add_row(str(node.node_id), node.address, str(pid or "-"), "yes" if serving else "no")
    Console().print(table)
    if not all(serving for _, _, serving in rows):
        raise typer.Exit(1)


def _cluster_node(number: int) -> kafka_local.Node:
    if number not in (1, 2, 3):
        raise _fail("the cluster has nodes 1, 2 and 3")
    return kafka_local.cluster_nodes()[number - 1]


@kafka_app.command("kill")
def kafka_kill(node: int) -> None:
    """SIGKILL one cluster node (fault tests)."""
    kafka_local.stop_nodes([_cluster_node(node)], signal.SIGKILL)


@kafka_app.command("stop")
def kafka_stop(node: int) -> None:
    """SIGTERM one cluster node (controlled shutdown)."""
    kafka_local.stop_nodes([_cluster_node(node)])


@kafka_app.command("start")
def kafka_start(node: int) -> None:
    """Restart one cluster node and wait until it serves again."""
    try:
        kafka_local.start_nodes([_cluster_node(node)])
    except kafka_local.KafkaLaunchError as exc:
        raise _fail(str(exc)) from exc


@postgres_app.command("up")
def postgres_up() -> None:
    """Install (if needed), create and start the local cluster."""
    with console.status("starting PostgreSQL"):
        try:
            url = LocalPostgres.default().up()
        except PostgresLaunchError as exc:
            raise _fail(str(exc)) from exc
    console.print(f"PostgreSQL ready: DATABASE_URL={url}")


@postgres_app.command("down")
def postgres_down() -> None:
    """Stop the local cluster."""
    LocalPostgres.default().down()


@postgres_app.command("status")
def postgres_status() -> None:
    """Exit 0 when the local cluster accepts connections."""
    running = LocalPostgres.default().running()
    Console().print("PostgreSQL: " + ("running" if running else "stopped"))
    if not running:
        raise typer.Exit(1)


@app.command("topics")
def topics() -> None:
    """Create the registry's missing topics; exit 1 if an existing one differs from the registry."""
    report = asyncio.run(ensure_topics(KafkaSettings(), TOPICS))
    for name in report.created:
        console.print(f"created {name}")
    console.print(f"{len(report.unchanged)} topic(s) already present")
    for drift in report.drifts:
        console.print(
            f"[red]drift[/] {drift.topic}: {drift.setting} is {drift.actual}, registry says {drift.expected}"
        )
    if not report.ok:
        raise typer.Exit(1)


async def _migrate(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        return await apply_migrations(connection)
    finally:
        await connection.close()


@app.command("migrate")
def migrate() -> None:
    """Apply pending SQL migrations to DATABASE_URL."""
    applied = asyncio.run(_migrate(PostgresSettings().database_url))
    console.print(f"applied migrations: {applied or 'none pending'}")


@app.command("up")
def up() -> None:
    """Single Kafka broker + PostgreSQL, then topics and migrations."""
    kafka_up(cluster=False)
    postgres_up()
    topics()
    migrate()


@app.command("down")
def down() -> None:
    """Stop whatever of the local infrastructure runs (single broker, cluster, PostgreSQL)."""
    kafka_local.stop_nodes(_nodes(False))
    kafka_local.stop_nodes(_nodes(True))
    LocalPostgres.default().down()


@app.command("status")
def status() -> None:
    """Status of the single broker and PostgreSQL."""
    kafka_status(cluster=False)
    postgres_status()


def main() -> None:
    app()
