"""``make run`` restarts a dying stage with backoff and gives up, with its log, when it keeps dying."""

from __future__ import annotations

import asyncio
import functools
import signal
from pathlib import Path

import pytest

from deploy.supervisor import RestartPolicy, StageState, Supervisor, describe_exit, tail_lines


def test_the_delay_doubles_while_exits_come_close_together_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay_s=1, factor=2, max_delay_s=5, give_up_after=10, window_s=60)
    exits: list[float] = []
    delays = []
    for at in range(6):
        exits.append(float(at))
        delays.append(policy.delay(exits, float(at)))
    assert delays == [1, 2, 4, 5, 5, 5]


def test_it_gives_up_at_the_nth_exit_inside_the_window() -> None:
    policy = RestartPolicy(give_up_after=3, window_s=60)
    assert policy.delay([0.0, 10.0], 10.0) is not None
    assert policy.delay([0.0, 10.0, 20.0], 20.0) is None


def test_exits_older_than_the_window_neither_count_nor_lengthen_the_delay() -> None:
    policy = RestartPolicy(first_delay_s=1, give_up_after=3, window_s=60)
    # a stage that dies once every few minutes is restarted forever, after the first delay
    assert policy.delay([0.0, 200.0, 400.0, 600.0], 600.0) == 1


@pytest.mark.parametrize(
    ("returncode", "said"),
    [
        (1, "exited with code 1"),
        (0, "exited with code 0"),
        (-signal.SIGKILL, "killed by SIGKILL"),
        (-signal.SIGTERM, "killed by SIGTERM"),
        (-200, "killed by signal 200"),
    ],
)
def test_an_exit_is_described_in_plain_words(returncode: int, said: str) -> None:
    assert describe_exit(returncode) == said


def test_the_tail_of_a_log_is_its_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "stage.log"
    log.write_text("".join(f"line {n}\n" for n in range(40)))
    assert tail_lines(log, 3) == ["line 37", "line 38", "line 39"]
    assert tail_lines(log, 3, max_bytes=8) == ["line 39"]  # reads only the end of a long log
    assert tail_lines(tmp_path / "missing.log") == []


def test_a_stage_state_reads_as_plain_words() -> None:
    state = StageState("projections", status="running", pid=42)
    assert state.describe(0) == "running (pid 42)"
    state.restarts, state.last_exit = 2, "killed by SIGKILL"
    assert state.describe(0) == "running (pid 42), restarted 2x (last: killed by SIGKILL)"
    state.status, state.retry_at = "restarting", 14.2
    assert state.describe(10.0) == "killed by SIGKILL; restarting in 4 s (restart 3)"
    state.status, state.exits = "gave up", [1.0, 2.0, 3.0]
    assert state.describe(10.0) == "gave up after 3 exits (last: killed by SIGKILL)"


async def _shell(script: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec("/bin/sh", "-c", script, stdout=out, stderr=out)


async def test_a_dying_stage_is_restarted_and_stop_ends_it_without_another_restart(tmp_path: Path) -> None:
    log = tmp_path / "flaky.log"
    starts: list[str] = []
    restarted = asyncio.Event()

    async def start() -> asyncio.subprocess.Process:
        script = "exit 3" if not starts else "exec sleep 60"  # dies once, then stays up
        starts.append(script)
        return await _shell(script, log)

    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if "restarted" in line:
            restarted.set()

    policy = RestartPolicy(first_delay_s=0.01, give_up_after=3)
    supervisor = Supervisor({"flaky": start}, {"flaky": log}, policy, say)
    await supervisor.start()
    await asyncio.wait_for(restarted.wait(), 10)
    state = supervisor.states["flaky"]
    assert (state.status, state.restarts, state.last_exit) == ("running", 1, "exited with code 3")
    assert said[0] == "flaky exited with code 3; restarting it in 0 s"
    await supervisor.stop()
    assert state.status == "stopped"
    assert len(starts) == 2  # the SIGTERM of stop() is not a death to restart after
    assert supervisor.failed is None


async def test_a_stage_that_keeps_dying_is_given_up_with_the_end_of_its_log(tmp_path: Path) -> None:
    log = tmp_path / "broken.log"
    start = functools.partial(_shell, "echo 'settings: DATABASE_URL is missing'; exit 2", log)
    said: list[str] = []
    policy = RestartPolicy(first_delay_s=0.01, give_up_after=3, window_s=60)
    supervisor = Supervisor({"broken": start}, {"broken": log}, policy, said.append)
    await supervisor.start()
    await asyncio.wait_for(supervisor.gave_up.wait(), 10)
    failed = supervisor.failed
    assert failed is not None and failed.name == "broken"
    assert (failed.status, failed.restarts, len(failed.exits)) == ("gave up", 2, 3)
    assert failed.log_tail[-1] == "settings: DATABASE_URL is missing"
    assert said[-1] == "broken keeps dying (exited with code 2); not restarting it again"
    await supervisor.stop()
    assert failed.status == "gave up"


async def test_a_stage_that_cannot_be_started_again_is_given_up(tmp_path: Path) -> None:
    log = tmp_path / "gone.log"
    starts = 0

    async def start() -> asyncio.subprocess.Process:
        nonlocal starts
        starts += 1
        if starts > 1:
            raise FileNotFoundError(2, "No such file or directory")
        return await _shell("exit 1", log)

    supervisor = Supervisor({"gone": start}, {"gone": log}, RestartPolicy(first_delay_s=0.01), lambda _: None)
    await supervisor.start()
    await asyncio.wait_for(supervisor.gave_up.wait(), 10)
    assert supervisor.failed is not None
    assert supervisor.failed.last_exit == "could not start (No such file or directory)"
    await supervisor.stop()
