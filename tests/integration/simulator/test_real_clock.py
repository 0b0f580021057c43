"""``python -m simulator`` with ``SIMULATOR_HISTORY_END=today`` on the real clock, as a new user runs it.

A client pages every collection of every member (start-up and added at run time) with WHOOP's
defaults over a real socket and finds exactly what ``/_sim/members`` counts, nothing after the
wall clock, and the newest cycle open. (The unit suite covers every zone at chosen times of day on
a manual clock; this is the same contract on the real one, whatever the hour of the run.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.timefmt import parse_query_datetime
from tests.support.server import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = {
    "cycle": "/developer/v2/cycle",
    "sleep": "/developer/v2/activity/sleep",
    "workout": "/developer/v2/activity/workout",
    "recovery": "/developer/v2/recovery",
}


@pytest.fixture
def simulator_url() -> Iterator[str]:
    port = free_port()
    env = dict(
        os.environ,
        SIMULATOR_PORT=str(port),
        SIMULATOR_MEMBERS="6",
        SIMULATOR_DAYS="40",
        SIMULATOR_HISTORY_END="today",
        SIMULATOR_QUOTA_ENABLED="false",
        SIMULATOR_WEBHOOKS_ENABLED="false",
    )
    proc = subprocess.Popen([sys.executable, "-m", "simulator"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sim/health", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) is not None


def _walk(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    params: dict[str, str] = {}
    while True:
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        records += body["records"]
        if not body.get("next_token"):
            return records
        params = {"nextToken": body["next_token"]}


def test_a_client_pages_what_is_counted_and_nothing_after_now(simulator_url: str) -> None:
    with httpx.Client(base_url=simulator_url, timeout=10) as control:
        members = control.get("/_sim/members").json()["members"]
        added = control.post("/_sim/members", json={"count": 6, "days": 40})
        assert added.status_code == 201, added.text
        members += added.json()["members"]
        assert len({m["home_zone"] for m in members}) == 6
        for member in members:
            token = control.post(f"/_sim/members/{member['user_id']}/tokens", json={}).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=simulator_url, timeout=10, headers=headers) as client:
                for kind, path in COLLECTIONS.items():
                    records = _walk(client, path)
                    now_ms = time.time_ns() // 1_000_000
                    assert len(records) == member["counts"][kind], (member["home_zone"], kind)
                    late = [
                        record
                        for record in records
                        for name in ("start", "end", "created_at", "updated_at")
                        if record.get(name) and parse_query_datetime(record[name]) > now_ms
                    ]
                    assert late == [], (member["home_zone"], kind)
                    if kind == "cycle":
                        assert records[0]["end"] is None
                        assert all(cycle["end"] is not None for cycle in records[1:])
