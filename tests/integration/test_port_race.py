"""A broker whose port is held for a moment (a client's self-connected socket) still starts."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from deploy import kafka_local
from deploy.ports import parse_port_list, reserve_ports


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _release_after_bind_failure(node: kafka_local.Node, holder: socket.socket, done: threading.Event) -> None:
    """Close ``holder`` once the node has logged that it lost the bind (or when told to stop)."""
    while not done.is_set():
        if node.log_file.exists() and kafka_local.BIND_FAILURE in node.log_file.read_bytes():
            break
        done.wait(0.1)
    holder.close()


def test_start_retries_after_losing_the_bind_race(tmp_path: Path) -> None:
    broker_port, controller_port = _free_port(), _free_port()
    node = kafka_local.Node(
        home=tmp_path / "node1",
        node_id=1,
        broker_port=broker_port,
        controller_port=controller_port,
        voters=f"1@127.0.0.1:{controller_port}",
        replication=1,
        min_isr=1,
        heap=("-Xms128m", "-Xmx384m"),
    )
    # bound but not listening, like the source port of a client's connection: dialling it
    # finds nothing, yet the broker's bind fails
    holder = socket.socket()
    holder.bind(("127.0.0.1", broker_port))
    done = threading.Event()
    releaser = threading.Thread(target=_release_after_bind_failure, args=(node, holder, done))
    releaser.start()
    try:
        kafka_local.start_nodes([node], timeout_s=90)
        assert kafka_local.api_versions_ok("127.0.0.1", broker_port)
        assert kafka_local.BIND_FAILURE in node.log_file.read_bytes(), "the first start did not lose the race"
    finally:
        done.set()
        releaser.join()
        kafka_local.stop_nodes([node])


def test_fixed_ports_in_the_ephemeral_range_are_reserved_as_root() -> None:
    reserved_file = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
    protected = reserve_ports([39092, 39093, 54329])
    if os.geteuid() == 0:  # as on CI and the dev machines; others rely on the launch retry
        assert protected
        assert {39092, 39093, 54329} <= parse_port_list(reserved_file.read_text())
