"""What ``make run`` shows: the stages, the topics, the simulated members and how to try the API.

``Board`` holds what the run learnt so far: records seen on each topic, what each simulated member
did and their record counts (it is the demo's ``Audience``), and the stages' restarts. ``render``
turns a board and the stages' states into the live view; ``try_api_lines``, ``count_text`` and
``summary_lines`` are the plain text parts, pure so they are tested as text.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from rich import box
from rich.console import Group
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from deploy.demo import CONNECTED, KINDS, ConnectedMember, RecordCount
from deploy.supervisor import StageState
from schemas.topics import DLQ_SUFFIX, TOPICS

__all__ = ["Board", "MemberRow", "count_text", "render", "summary_lines", "try_api_lines"]


@dataclass
class MemberRow:
    """One simulated member as the view shows them."""

    member: ConnectedMember
    name: str
    activity: str = "connected; their WHOOP history is being backfilled"
    at: float | None = None
    counts: Mapping[str, RecordCount] = field(default_factory=dict)


@dataclass
class Board:
    """What the run saw so far (the demo's ``Audience``, the topic watcher's and the supervisor's sink)."""

    edge_url: str
    clock: Callable[[], float] = time.monotonic
    topic_counts: Counter[str] = field(default_factory=Counter)
    last_key: dict[str, str] = field(default_factory=dict)
    members: dict[str, MemberRow] = field(default_factory=dict)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=6))
    history: list[str] = field(default_factory=list)  # every event, for the closing summary

    def connected(self, member: ConnectedMember, name: str) -> None:
        self.members[member.user_id] = MemberRow(member, name, at=self.clock())

    def did(self, member: ConnectedMember, activity: str) -> None:
        row = self.members[member.user_id]
        row.activity, row.at = activity, self.clock()

    def counted(self, member: ConnectedMember, counts: Mapping[str, RecordCount]) -> None:
        self.members[member.user_id].counts = dict(counts)

    def note(self, line: str) -> None:
        """A line about the run itself (a stage restarted, the edge not answering)."""
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        self.events.append(stamped)
        self.history.append(stamped)


def count_text(count: RecordCount | None) -> str:
    """``"34"`` when the read models hold all WHOOP has, ``"30 of 34"`` while they catch up.

    (Records of an earlier run's members stay readable, so readable may exceed what WHOOP holds.)
    """
    if count is None:
        return "-"
    if count.more:
        return f"{count.readable}+"
    if count.at_whoop is None or count.readable >= count.at_whoop:
        return str(count.readable)
    return f"{count.readable} of {count.at_whoop}"


def try_api_lines(edge_url: str, row: MemberRow) -> list[str]:
    """How to read a member's data yourself: their user id, their token and a ready ``curl`` line.

    The shell lines stay under 80 columns, so that no terminal breaks them when they are copied.
    """
    member = row.member
    return [
        f"{row.name} (WHOOP member {member.whoop_user_id}) is user {member.user_id}, "
        "with this API token (issued by the OAuth callback, as to the phone app):",
        f"export TOKEN={member.api_token}",
        f"export API={edge_url}/v1/data/{member.user_id}",
        'curl -s -H "Authorization: Bearer $TOKEN" "$API/sleep?limit=5"',
        f"also $API/recovery, /cycles, /workouts, /daily, /sync; every route: {edge_url}/openapi.json",
    ]


def _ago(row: MemberRow, now: float) -> str:
    return "" if row.at is None else f", {now - row.at:.0f} s ago"


def _members_table(board: Board, now: float) -> Table:
    table = Table(
        title="simulated members: each activity makes the simulated WHOOP send signed webhooks",
        caption="records each member can read through the query API with their own token "
        "('30 of 34': WHOOP holds 34, the pipeline is catching up)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("member")
    table.add_column("user id")
    for kind in KINDS:
        table.add_column(kind, justify="right")
    table.add_column("doing now")
    for row in board.members.values():
        counts = [count_text(row.counts.get(kind)) for kind in KINDS]
        name = f"{row.name} ({row.member.whoop_user_id})"
        table.add_row(name, row.member.user_id, *counts, row.activity + _ago(row, now))
    return table


def _topics_table(board: Board, elapsed: float) -> Table:
    """Records per topic; a dead-letter topic gets a row once something lands on it."""
    table = Table(title=f"records on the topics ({elapsed:.0f} s; Ctrl-C stops)", box=box.SIMPLE_HEAD)
    table.add_column("topic")
    table.add_column("records", justify="right")
    table.add_column("last record")
    empty_dlqs = 0
    for spec in TOPICS:
        count = board.topic_counts[spec.name]
        if spec.name.endswith(DLQ_SUFFIX) and not count:
            empty_dlqs += 1
            continue
        table.add_row(spec.name, str(count), _kind_of(board.last_key.get(spec.name, "")))
    if empty_dlqs:
        table.caption = f"{empty_dlqs} dead-letter topic(s) empty"
    return table


def _kind_of(key: str) -> str:
    """The resource kind of a record key (``<user>:<kind>:<id>``), or the key when it has another form."""
    parts = key.split(":")
    return parts[1] if len(parts) >= 3 else key


def _stages_table(states: Iterable[StageState], now: float) -> Table:
    table = Table(title="stages (log: run/logs/<stage>.log)", box=box.SIMPLE_HEAD)
    table.add_column("stage")
    table.add_column("state")
    for state in states:
        style = {"running": "green", "restarting": "yellow", "gave up": "red"}.get(state.status, "")
        table.add_row(state.name, Text(state.describe(now), style=style))
    return table


def render(board: Board, states: Iterable[StageState], elapsed: float) -> Group:
    """The live view: stages, topics, members, how to try the API, and the run's latest events."""
    now = board.clock()
    top = Table.grid(padding=(0, 4))
    top.add_row(_stages_table(states, now), _topics_table(board, elapsed))
    parts: list[Table | Rule | Text] = [top]
    if board.members:
        parts.append(_members_table(board, now))
        first = next(iter(board.members.values()))
        # no box around it: a wrapped line copies whole from the terminal
        parts += [Rule("try the API", align="left"), Text("\n".join(try_api_lines(board.edge_url, first)))]
    else:
        parts.append(
            Text("connecting simulated members through the edge's OAuth routes, as the phone app...")
        )
    if board.events:
        parts.append(Text("\n".join(board.events)))
    return Group(*parts)


def summary_lines(board: Board) -> list[str]:
    """What the run prints when it stops: who connected, their counts, and what happened to the stages."""
    lines = [
        f"{CONNECTED} {r.member.whoop_user_id} as user {r.member.user_id}" for r in board.members.values()
    ]
    for row in board.members.values():
        counts = ", ".join(f"{count_text(row.counts.get(kind))} {kind}" for kind in KINDS)
        lines.append(f"member {row.member.whoop_user_id}: {counts} readable through the query API")
    return lines + board.history
