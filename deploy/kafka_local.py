"""A real Apache Kafka 4.3 KRaft broker (one node) or a 3-node cluster, run from Maven Central jars.

The jars are assembled once by Maven from ``deploy/kafka/pom.xml`` into ``run/kafka-lib`` and
reused. Each node lives in ``run/kafka/<single|cluster>/node<N>`` with its config, data, logs and
pid file. Starting is idempotent (a node that already serves is left alone) and waits until the
node logs "Kafka Server started" *after this start* and answers an ApiVersions request; a node
that dies or does not come up in time fails loudly with the tail of its log. Whether a broker answers
is ``deploy.kafka_probe``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.kafka_probe import api_versions_ok, port_in_use
from deploy.paths import DEPLOY_DIR, run_dir

__all__ = [
    "CLUSTER_BOOTSTRAP",
    "SINGLE_BOOTSTRAP",
    "KafkaLaunchError",
    "Node",
    "api_versions_ok",
    "cluster_nodes",
    "fetch_jars",
    "single_node",
    "start_nodes",
    "status",
    "stop_nodes",
]

ASSETS = DEPLOY_DIR / "kafka"
SINGLE_BOOTSTRAP = "127.0.0.1:9092"
# Every fixed port lies below Linux's ephemeral range (32768-60999): a client's outgoing connection is
# never given one as its source port, so a restarting broker always finds its ports free.
CLUSTER_BROKER_PORTS = (19092, 19192, 19292)
CLUSTER_BOOTSTRAP = ",".join(f"127.0.0.1:{port}" for port in CLUSTER_BROKER_PORTS)
START_TIMEOUT_S = 120.0
STARTED_MARKER = b"Kafka Server started"
JVM_OPTS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
)


class KafkaLaunchError(RuntimeError):
    """A broker could not be fetched, formatted or started."""


@dataclass(frozen=True)
class Node:
    """One KRaft node (combined broker + controller) on loopback."""

    home: Path
    node_id: int
    broker_port: int
    controller_port: int
    voters: str
    replication: int
    min_isr: int
    heap: tuple[str, ...]

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def pid(self) -> int | None:
        """The pid of the running JVM, or None when it is not running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def config(self) -> str:
        r, isr = self.replication, self.min_isr
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={self.voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.broker_port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.broker_port}",
                "inter.broker.listener.name=PLAINTEXT",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.home / 'data'}",
                f"num.partitions={r}",
                f"default.replication.factor={r}",
                f"min.insync.replicas={isr}",
                f"offsets.topic.replication.factor={r}",
                "offsets.topic.num.partitions=10",
                f"transaction.state.log.replication.factor={r}",
                f"transaction.state.log.min.isr={isr}",
                "transaction.state.log.num.partitions=10",
                f"share.coordinator.state.topic.replication.factor={r}",
                f"share.coordinator.state.topic.min.isr={isr}",
                "group.initial.rebalance.delay.ms=0",
                # topics come from the registry (python -m deploy topics); a typo must not create one
                "auto.create.topics.enable=false",
                "unclean.leader.election.enable=false",
                "broker.heartbeat.interval.ms=500",
                "broker.session.timeout.ms=3000",
                "num.network.threads=2",
                "num.io.threads=4",
                "num.replica.fetchers=1",
                "background.threads=4",
                "num.recovery.threads.per.data.dir=1",
                "log.cleaner.dedupe.buffer.size=33554432",
                "",
            ]
        )


def single_node() -> Node:
    """The single-node broker on 127.0.0.1:9092 (controller 9093)."""
    return Node(
        home=run_dir() / "kafka" / "single" / "node1",
        node_id=1,
        broker_port=9092,
        controller_port=9093,
        voters="1@127.0.0.1:9093",
        replication=1,
        min_isr=1,
        heap=("-Xms512m", "-Xmx1g"),
    )


def cluster_nodes() -> list[Node]:
    """The three cluster nodes: broker ports 19092/19192/19292, each controller on the next port."""
    ports = dict(enumerate(CLUSTER_BROKER_PORTS, start=1))
    voters = ",".join(f"{n}@127.0.0.1:{port + 1}" for n, port in ports.items())
    return [
        Node(
            home=run_dir() / "kafka" / "cluster" / f"node{n}",
            node_id=n,
            broker_port=port,
            controller_port=port + 1,
            voters=voters,
            replication=3,
            min_isr=2,
            heap=("-Xms256m", "-Xmx768m"),
        )
        for n, port in ports.items()
    ]


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java:
        raise KafkaLaunchError(
            "java not found: install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java


def lib_dir() -> Path:
    return run_dir() / "kafka-lib"


def fetch_jars() -> Path:
    """Assemble the broker classpath with Maven once; later calls reuse it."""
    lib = lib_dir()
    if any(lib.glob("kafka_2.13-*.jar")):
        return lib
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaLaunchError("mvn not found: install Maven (Debian: apt-get install maven)")
    partial = lib.with_name("kafka-lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(ASSETS / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaLaunchError(f"Maven could not assemble the Kafka jars:\n{result.stdout}\n{result.stderr}")
    partial.rename(lib)
    return lib


def _storage_tool(*args: str) -> str:
    result = subprocess.run(
        [
            _java(),
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={ASSETS / 'tools-log4j2.properties'}",
            "-cp",
            f"{lib_dir()}/*",
            "kafka.tools.StorageTool",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaLaunchError(f"StorageTool {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


def _cluster_id(base: Path) -> str:
    id_file = base / "cluster.id"
    if not id_file.exists() or not id_file.read_text().strip():
        base.mkdir(parents=True, exist_ok=True)
        id_file.write_text(_storage_tool("random-uuid").splitlines()[-1] + "\n")
    return id_file.read_text().strip()


def _prepare(node: Node, cluster_id: str) -> None:
    (node.home / "logs").mkdir(parents=True, exist_ok=True)
    (node.home / "data").mkdir(parents=True, exist_ok=True)
    config = node.home / "server.properties"
    config.write_text(node.config())
    if not (node.home / "data" / "meta.properties").exists():
        _storage_tool("format", "-t", cluster_id, "-c", str(config), "--ignore-formatted")


def _launch(node: Node) -> int:
    """Start the JVM as a daemon (not our child); returns the byte offset of server.log before the start."""
    offset = node.log_file.stat().st_size if node.log_file.exists() else 0
    argv = [
        _java(),
        *node.heap,
        *JVM_OPTS,
        f"-Dkafka.logs.dir={node.home / 'logs'}",
        f"-Dlog4j2.configurationFile={ASSETS / 'log4j2.properties'}",
        "-cp",
        f"{lib_dir()}/*",
        "kafka.Kafka",
        str(node.home / "server.properties"),
    ]
    # The shell backgrounds the JVM and exits at once, so the broker outlives this process (and a
    # test session) without being a child we would have to reap.
    result = subprocess.run(
        [
            "/bin/sh",
            "-c",
            'log=$1; shift; setsid "$@" >>"$log" 2>&1 </dev/null & echo $!',
            "sh",
            str(node.home / "logs" / "stdout.log"),
            *argv,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    node.pid_file.write_text(result.stdout.strip() + "\n")
    return offset


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


def _log_since(node: Node, offset: int) -> bytes:
    try:
        with node.log_file.open("rb") as log:
            log.seek(offset)
            return log.read()
    except FileNotFoundError:
        return b""


def _started_since(node: Node, offset: int) -> bool:
    return STARTED_MARKER in _log_since(node, offset)


def _wait_started(nodes: Sequence[tuple[Node, int]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(nodes)
    while pending:
        still: list[tuple[Node, int]] = []
        for node, offset in pending:
            if node.pid() is None:
                raise KafkaLaunchError(
                    f"Kafka node {node.node_id} in {node.home} exited during startup:\n"
                    f"{_tail(node.home / 'logs' / 'stdout.log')}\n{_tail(node.log_file)}"
                )
            if not (_started_since(node, offset) and api_versions_ok("127.0.0.1", node.broker_port)):
                still.append((node, offset))
        pending = still
        if pending and time.monotonic() > deadline:
            names = ", ".join(f"node {n.node_id} ({n.address})" for n, _ in pending)
            tail = _tail(pending[0][0].log_file)
            raise KafkaLaunchError(f"Kafka {names} not ready after {timeout_s:.0f}s; last log lines:\n{tail}")
        if pending:
            time.sleep(0.25)


def start_nodes(nodes: Sequence[Node], timeout_s: float = START_TIMEOUT_S) -> None:
    """Start every node that is not already serving, all together, and wait until each serves."""
    fetch_jars()
    if not nodes:
        return
    cluster_id = _cluster_id(nodes[0].home.parent)
    launched: list[tuple[Node, int]] = []
    for node in nodes:
        if api_versions_ok("127.0.0.1", node.broker_port):
            continue  # already serving (started by us, or by another checkout's launcher)
        if node.pid() is None and port_in_use(node.broker_port):
            raise KafkaLaunchError(
                f"port {node.broker_port} is taken by something that is not a Kafka broker"
            )
        _prepare(node, cluster_id)
        if node.pid() is None:
            launched.append((node, _launch(node)))
        else:  # running but not answering yet: wait on it from the start of its log
            launched.append((node, 0))
    _wait_started(launched, timeout_s)


def stop_nodes(nodes: Sequence[Node], sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> None:
    """Send ``sig`` to every running node and wait for it to exit (SIGKILL after the timeout)."""
    running = [(node, pid) for node in nodes if (pid := node.pid()) is not None]
    for _, pid in running:
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    for node, pid in running:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        node.pid_file.unlink(missing_ok=True)


def status(nodes: Sequence[Node]) -> list[tuple[Node, int | None, bool]]:
    """(node, pid or None, answers ApiVersions) for each node."""
    return [(node, node.pid(), api_versions_ok("127.0.0.1", node.broker_port)) for node in nodes]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a killed child that nobody reaped is a zombie: treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return False
