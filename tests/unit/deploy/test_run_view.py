"""The live view of ``make run`` gives what a person needs: who the members are, their counts, a curl line."""

from __future__ import annotations

import shlex

from rich.console import Console

from deploy.demo import CONNECTED, ConnectedMember, RecordCount
from deploy.live_view import Board, MemberRow, count_text, render, summary_lines, try_api_lines
from deploy.supervisor import StageState

EDGE = "http://127.0.0.1:8000"
ZOE = ConnectedMember(
    100383, "9ca5ca93-3e1b-502f-806a-fa31972c4d09", "wpt_n2h9ZNyiAYXgxE7MgD8sw3qLDRca-TMOXeyC"
)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _board() -> tuple[Board, _Clock]:
    clock = _Clock()
    board = Board(EDGE, clock=clock)
    board.connected(ZOE, "Zoe")
    return board, clock


def _text(board: Board, states: list[StageState], width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(render(board, states, 12))
    return console.export_text()


def test_counts_read_as_whole_numbers_or_as_catching_up() -> None:
    assert count_text(RecordCount(34, 34)) == "34"
    assert count_text(RecordCount(30, 34)) == "30 of 34"
    assert count_text(RecordCount(40, 33)) == "40"  # an earlier run's records stay readable
    assert count_text(RecordCount(25, None)) == "25"
    assert count_text(RecordCount(2500, 3000, more=True)) == "2500+"  # not the page cap: a lower bound
    assert count_text(None) == "-"


def test_the_try_it_lines_give_the_user_id_the_token_and_a_curl_line_that_uses_them() -> None:
    intro, token, api, curl, more = try_api_lines(EDGE, MemberRow(ZOE, "Zoe"))
    assert ZOE.user_id in intro and "100383" in intro
    assert token == f"export TOKEN={ZOE.api_token}"
    assert api == f"export API={EDGE}/v1/data/{ZOE.user_id}"
    assert shlex.split(curl) == ["curl", "-s", "-H", "Authorization: Bearer $TOKEN", "$API/sleep?limit=5"]
    assert all(len(line) < 80 for line in (token, api, curl))  # a narrow terminal does not break them
    assert f"{EDGE}/openapi.json" in more


def test_the_view_shows_each_members_counts_activity_and_a_curl_line_that_is_not_cut() -> None:
    board, clock = _board()
    board.did(ZOE, "finished a workout (cycling)")
    counts = {
        "sleep": RecordCount(40, 40),
        "recovery": RecordCount(31, 33),
        "cycles": RecordCount(33, 33),
        "workouts": RecordCount(57, 57),
    }
    board.counted(ZOE, counts)
    clock.now += 6
    text = _text(board, [StageState("edge", status="running", pid=7)])
    row = next(line for line in text.splitlines() if ZOE.user_id in line and "Zoe" in line)
    assert row.split()[3:8] == ["40", "31", "of", "33", "33"]
    assert "57" in row and "finished a workout (cycling), 6 s ago" in row
    assert "25 readable" not in text
    lines = text.splitlines()
    assert f"export TOKEN={ZOE.api_token}" in lines
    assert f"export API={EDGE}/v1/data/{ZOE.user_id}" in lines
    assert 'curl -s -H "Authorization: Bearer $TOKEN" "$API/sleep?limit=5"' in lines
    assert "running (pid 7)" in text


def test_the_view_says_when_a_stage_restarts_and_when_it_gave_up() -> None:
    board, clock = _board()
    board.note("projections killed by SIGKILL; restarting it in 1 s")
    restarting = StageState("projections", status="restarting", restarts=0, last_exit="killed by SIGKILL")
    restarting.retry_at = clock.now + 1
    broken = StageState("processors", status="gave up", last_exit="exited with code 2", exits=[1, 2, 3, 4, 5])
    text = _text(board, [restarting, broken])
    assert "killed by SIGKILL; restarting in 1 s (restart 1)" in text
    assert "gave up after 5 exits (last: exited with code 2)" in text
    assert "projections killed by SIGKILL; restarting it in 1 s" in text


def test_before_anyone_connects_the_view_says_what_it_waits_for() -> None:
    text = _text(Board(EDGE), [StageState("edge")])
    assert "connecting simulated members" in text
    assert "curl" not in text


def test_the_summary_names_the_connections_the_counts_and_the_stage_events() -> None:
    board, _ = _board()
    board.counted(ZOE, {"workouts": RecordCount(12, 14)})
    board.note("edge restarted (pid 9, restart 1)")
    lines = summary_lines(board)
    assert lines[0] == f"{CONNECTED} 100383 as user {ZOE.user_id}"
    assert (
        lines[1]
        == "member 100383: - sleep, - recovery, - cycles, 12 of 14 workouts readable through the query API"
    )
    assert lines[2].endswith(" edge restarted (pid 9, restart 1)")


def test_the_topics_show_their_counts_and_a_dead_letter_topic_only_once_it_holds_something() -> None:
    board, _ = _board()
    board.topic_counts.update({"wear.records.v1": 375, "whoop.documents.v1.dlq": 2})
    board.last_key["wear.records.v1"] = f"{ZOE.user_id}:workout:675a2bed"
    lines = _text(board, [StageState("edge")]).splitlines()
    assert any(line.split()[-3:] == ["wear.records.v1", "375", "workout"] for line in lines)
    assert any(line.split()[-2:] == ["whoop.documents.v1.dlq", "2"] for line in lines)
    assert not any("wear.records.v1.dlq" in line for line in lines)
    assert any("3 dead-letter topic(s) empty" in line for line in lines)


def test_in_a_narrow_terminal_the_shell_lines_still_copy_whole() -> None:
    board, _ = _board()
    lines = _text(board, [StageState("edge")], width=80).splitlines()
    for line in try_api_lines(EDGE, board.members[ZOE.user_id])[1:4]:
        assert line in lines
