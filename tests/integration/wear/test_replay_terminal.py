"""``wear rebuild`` in a real terminal (tmux): the progress bar, the question, the summary line.

The command runs in a tmux pane of 200x50 on a tmux server of this test's own (its own socket), with
stdin a terminal and no ``--yes``: it builds version 2 with a progress bar (bar, done/total, records/s,
elapsed, ETA), prints the verification, asks before the switch; the test types "yes", and the pane
ends with the summary line and exit 0.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from infra.settings import KafkaSettings
from tests.integration.projections import conftest as projection_fixtures
from tests.integration.projections.helpers import produce
from tests.integration.projections.rebuild_harness import env_of, project, served, settings_for, stream
from tests.unit.projections.factory import Member

pytestmark = pytest.mark.integration
records_topic = projection_fixtures.records_topic  # a records topic shaped like wear.records.v1, and its .dlq

MEMBERS = [Member(650001 + n) for n in range(12)]
_QUESTION = 'Type "yes" to go on:'
_TMUX = shutil.which("tmux") or "/usr/bin/tmux"


class Pane:
    """One tmux session on a server of its own."""

    def __init__(self) -> None:
        self.socket = f"wear-test-{uuid.uuid4().hex[:10]}"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            [_TMUX, "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=10
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "wear")

    async def shows(self, text: str, timeout_s: float) -> str:
        """Poll the pane until it shows ``text`` (at most ``timeout_s``); the screen."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            screen = await asyncio.to_thread(self.screen)
            if text in screen:
                return screen
            assert asyncio.get_running_loop().time() < deadline, f"{text!r} never showed:\n{screen}"
            await asyncio.sleep(0.2)


@pytest.fixture
def pane() -> Iterator[Pane]:
    made = Pane()
    yield made
    subprocess.run([_TMUX, "-L", made.socket, "kill-server"], capture_output=True, check=False, timeout=10)


@pytest.mark.timeout(240)
async def test_wear_rebuild_on_a_terminal_shows_its_progress_bar_asks_and_ends_with_its_summary(
    kafka_settings: KafkaSettings,
    records_topic: str,
    group_id: str,
    db_pool: asyncpg.Pool,
    pg_schema: str,
    database_url: str,
    pane: Pane,
    tmp_path: Path,
) -> None:
    log = stream(MEMBERS, days=40)  # a load long enough for rich to measure its rate
    await produce(kafka_settings, records_topic, log)
    settings = settings_for(kafka_settings, database_url, pg_schema, records_topic, group_id)
    await project(kafka_settings, settings, db_pool)
    script = tmp_path / "session.sh"
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n"
        for name, value in {**env_of(settings), "PIPELINE_ENV": "dev"}.items()
        if name.isidentifier()
    )
    script.write_text(
        f"{exports}cd {shlex.quote(str(Path.cwd()))}\n"
        f"{shlex.quote(sys.executable)} -m wear rebuild\n"
        'echo "WEAR-EXIT=$?"\n'
        "exec cat\n"  # keeps the pane open for the capture
    )
    pane.tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", "wear", f"sh {shlex.quote(str(script))}")

    asked = await pane.shows(_QUESTION, 150)
    assert f"building version 2 ({pg_schema}_rm2) from {records_topic}" in asked
    assert "Serve it instead of version 1?" in asked
    bar = next(line for line in asked.splitlines() if line.startswith("version 2 "))
    assert "━" in bar and f"{len(log)}/{len(log)}" in bar, bar  # the bar, done/total
    assert "records/s" in bar and "ETA" in bar, bar  # the rate and the ETA
    assert await served(db_pool) == 1  # nothing switched before the answer

    pane.tmux("send-keys", "-t", "wear", "yes", "Enter")
    screen = await pane.shows("WEAR-EXIT=", 120)
    assert "WEAR-EXIT=0" in screen, screen
    summary = next(line for line in screen.splitlines() if line.startswith("rebuilt: "))
    assert summary.startswith(f"rebuilt: {len(log):,} records in "), summary
    assert summary.endswith("switched from version 1 to version 2"), summary
    assert "Traceback" not in screen
    assert await served(db_pool) == 2
