"""The typer commands behind ``python -m deploy`` (see ``deploy/__main__.py``)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from deploy import k8s_topics, kafka_local
from deploy.config_doc import render_env_example, render_readme_table, replace_marked
from deploy.edge import serve_edge
from deploy.paths import REPO_ROOT
from deploy.postgres_local import LOCAL_DATABASE_URL, LocalPostgres, PostgresLaunchError
from deploy.run import run_pipeline
from infra.migrations import MigrationError, apply_migrations
from infra.settings import KafkaSettings, PostgresSettings
from infra.topic_admin import ensure_topics
from schemas.jsonschema import render_all
from schemas.topics import TOPICS

__all__ = ["main"]

app = typer.Typer(
    help="Local infrastructure of the WHOOP pipeline.", no_args_is_help=True, add_completion=False
)
kafka_app = typer.Typer(help="A Kafka 4.3 KRaft broker (or 3-node cluster) from Maven Central jars.")
postgres_app = typer.Typer(help="The project's own PostgreSQL cluster under run/postgres.")
schemas_app = typer.Typer(help="The JSON Schema files of our events in schemas/json/.")
config_app = typer.Typer(help="The configuration reference (README table, deploy/env.example).")
k8s_app = typer.Typer(help="The Kubernetes manifests of deploy/k8s/.")
k8s_topics_app = typer.Typer(help="The KafkaTopic resources, rendered from schemas/topics.py.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(postgres_app, name="postgres")
app.add_typer(schemas_app, name="schemas")
app.add_typer(config_app, name="config")
app.add_typer(k8s_app, name="k8s")
k8s_app.add_typer(k8s_topics_app, name="topics")
JSON_SCHEMA_DIR = REPO_ROOT / "schemas" / "json"
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
    settings = KafkaSettings()
    try:
        report = asyncio.run(ensure_topics(settings, TOPICS))
    except KafkaError as exc:
        raise _fail(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
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
    try:
        applied = asyncio.run(_migrate(PostgresSettings().database_url))
    except (OSError, asyncpg.PostgresError, MigrationError) as exc:
        raise _fail(f"cannot migrate the database named by DATABASE_URL: {exc}") from exc
    console.print(f"applied migrations: {applied or 'none pending'}")


@schemas_app.command("write")
def schemas_write() -> None:
    """Regenerate schemas/json/ from the event models."""
    wanted = render_all()
    JSON_SCHEMA_DIR.mkdir(exist_ok=True)
    for stale in {p.name for p in JSON_SCHEMA_DIR.glob("*.schema.json")} - set(wanted):
        (JSON_SCHEMA_DIR / stale).unlink()
    for name, content in wanted.items():
        (JSON_SCHEMA_DIR / name).write_bytes(content)
    console.print(f"wrote {len(wanted)} schema file(s) to {JSON_SCHEMA_DIR}")


@schemas_app.command("check")
def schemas_check() -> None:
    """Exit 1 when schemas/json/ differs from what the models render."""
    wanted = render_all()
    present = {p.name: p.read_bytes() for p in JSON_SCHEMA_DIR.glob("*.schema.json")}
    problems = [f"missing or stale: {n}" for n, c in wanted.items() if present.get(n) != c]
    problems += [f"extra: {n}" for n in sorted(set(present) - set(wanted))]
    for problem in problems:
        console.print(f"[red]schemas/json {problem}[/] (run `make schemas`)")
    if problems:
        raise typer.Exit(1)
    console.print(f"schemas/json matches the models ({len(wanted)} files)")


def _config_files() -> dict[Path, str]:
    readme = REPO_ROOT / "README.md"
    return {
        readme: replace_marked(readme.read_text(), render_readme_table()),
        REPO_ROOT / "deploy" / "env.example": render_env_example(),
    }


@config_app.command("write")
def config_write() -> None:
    """Rewrite the README's configuration table and deploy/env.example from the settings classes."""
    for path, content in _config_files().items():
        path.write_text(content)
        console.print(f"wrote {path.relative_to(REPO_ROOT)}")


@config_app.command("check")
def config_check() -> None:
    """Exit 1 when the README table or deploy/env.example differs from the settings classes."""
    stale = [path for path, content in _config_files().items() if path.read_text() != content]
    for path in stale:
        console.print(
            f"[red]{path.relative_to(REPO_ROOT)} is out of date[/] (run `python -m deploy config write`)"
        )
    if stale:
        raise typer.Exit(1)


@k8s_topics_app.command("write")
def k8s_topics_write() -> None:
    """Rewrite deploy/k8s/base/topics.yaml from the topic registry."""
    k8s_topics.TOPICS_FILE.write_text(k8s_topics.render_topics())
    console.print(f"wrote {k8s_topics.TOPICS_FILE.relative_to(REPO_ROOT)} ({len(TOPICS)} topics)")


@k8s_topics_app.command("check")
def k8s_topics_check() -> None:
    """Exit 1 when deploy/k8s/base/topics.yaml differs from what the topic registry renders."""
    name = k8s_topics.TOPICS_FILE.relative_to(REPO_ROOT)
    if k8s_topics.stale():
        console.print(f"[red]{name} is out of date[/] (run `python -m deploy k8s topics write`)")
        raise typer.Exit(1)
    console.print(f"{name} matches schemas/topics.py ({len(TOPICS)} topics)")


@app.command("up")
def up() -> None:
    """Single Kafka broker + PostgreSQL (unless the environment names others), then topics and migrations."""
    kafka = KafkaSettings().kafka_bootstrap_servers
    if kafka == kafka_local.SINGLE_BOOTSTRAP:
        kafka_up(cluster=False)
    else:
        console.print(f"using the Kafka named by KAFKA_BOOTSTRAP_SERVERS={kafka}")
    database = PostgresSettings().database_url
    if database == LOCAL_DATABASE_URL:
        postgres_up()
    else:
        console.print("using the PostgreSQL named by DATABASE_URL")
    topics()
    migrate()


@app.command("run")
def run(
    seconds: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")
    ] = None,
) -> None:
    """Start the infrastructure and every pipeline stage, and show data flowing through the topics."""
    up()
    raise typer.Exit(asyncio.run(run_pipeline(Console(), seconds)))


@app.command("edge")
def edge() -> None:
    """Serve the HTTP edge (ingest + query API) on INGEST_HOST:INGEST_PORT (127.0.0.1:8000)."""
    if status := serve_edge():
        raise typer.Exit(status)


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
