"""The ``wear status`` screen (rich): one table per section, drawn from a :class:`~wear.status_model.Status`.

Pure: ``render(status)`` returns a renderable; the command prints it once or hands it to ``rich.live``.
Section titles are fixed text (the tests and the terminal capture look for them).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wear.status_model import PartitionLag, Status

__all__ = ["SECTIONS", "render"]

SECTIONS = (
    "Consumer lag",
    "Dead-letter topics",
    "WHOOP quota",
    "Connections needing re-authorization",
    "Backfills in progress",
    "Rebuilds in progress",
)


def _partition_lags(parts: list[PartitionLag]) -> Text:
    """``0 0 12 0``: the lag of each partition in partition order, the lagging ones in red."""
    text = Text()
    for index, part in enumerate(parts):
        if index:
            text.append(" ")
        text.append(f"{part.lag:,}", style="bold red" if part.lag else "")
    return text


def _lag_table(status: Status) -> Table:
    table = Table(title=SECTIONS[0], title_justify="left")
    table.add_column("stage")
    table.add_column("group")
    table.add_column("offsets in")
    table.add_column("members", justify="right")
    table.add_column("topic")
    table.add_column("lag", justify="right")
    table.add_column("lag per partition (0, 1, ...)")
    for group in status.groups:
        members = str(group.members) if group.members else "[yellow]0 (stopped)[/]"
        head = [group.stage, group.group, group.kind, members]
        topics: dict[str, list[PartitionLag]] = {}
        for part in group.partitions:
            topics.setdefault(part.topic, []).append(part)
        for name in group.missing:
            table.add_row(*head, name, "", "[yellow]no such topic[/]")
            head = ["", "", "", ""]
        for name, parts in topics.items():
            lag = sum(part.lag for part in parts)
            table.add_row(
                *head, name, f"[bold red]{lag:,}[/]" if lag else "[green]0[/]", _partition_lags(parts)
            )
            head = ["", "", "", ""]
    return table


def _dlq_table(status: Status) -> Table:
    table = Table(title=SECTIONS[1], title_justify="left")
    table.add_column("topic")
    table.add_column("messages", justify="right")
    for dlq in status.dlqs:
        if dlq.messages is None:
            count = "[dim]no such topic[/]"
        else:
            count = f"[bold red]{dlq.messages:,}[/]" if dlq.messages else "0"
        table.add_row(dlq.topic, count)
    return table


def _quota_table(status: Status) -> Table:
    quota = status.quota
    paused = "" if quota.paused_until is None else f", paused until {quota.paused_until:%H:%M:%S} UTC (429)"
    table = Table(title=f"{SECTIONS[2]} (bucket {quota.bucket}{paused})", title_justify="left")
    table.add_column("window")
    table.add_column("priority")
    table.add_column("used", justify="right")
    table.add_column("allowed", justify="right")
    table.add_column("left", justify="right")
    for window in quota.windows:
        table.add_row(
            window.window, "[bold]all[/]", f"{window.used:,}", f"{window.capacity:,}", f"{window.left:,}"
        )
        for index, use in enumerate(window.priorities):
            table.add_row(
                "",
                use.priority,
                f"{use.used:,}",
                f"{use.allowed:,}",
                f"{use.left:,}" if use.left else "[yellow]0[/]",
                end_section=index == len(window.priorities) - 1,
            )
    return table


def _reauth_table(status: Status) -> RenderableType:
    if not status.reauth_total:
        return Text(f"{SECTIONS[3]}: none", style="green")
    table = Table(title=f"{SECTIONS[3]}: {status.reauth_total:,}", title_justify="left")
    table.add_column("user")
    table.add_column("WHOOP member", justify="right")
    table.add_column("since")
    for reauth in status.reauth:
        table.add_row(reauth.user_id, str(reauth.whoop_user_id), f"{reauth.since:%Y-%m-%d %H:%M} UTC")
    if status.reauth_total > len(status.reauth):
        table.caption = f"and {status.reauth_total - len(status.reauth):,} more (wear users list)"
    return table


def _backfill_table(status: Status) -> RenderableType:
    if not status.backfills:
        return Text(f"{SECTIONS[4]}: none", style="green")
    table = Table(title=f"{SECTIONS[4]}: {len(status.backfills):,}", title_justify="left")
    for column in ("job", "user", "status", "types done", "pages", "records", "requested"):
        table.add_column(column, justify="right" if column in ("pages", "records") else "left")
    for job in status.backfills:
        table.add_row(
            job.job_id,
            job.user_id,
            job.status,
            f"{job.types_done}/{len(job.resource_types)} ({', '.join(job.resource_types)})",
            f"{job.pages:,}",
            f"{job.records:,}",
            f"{job.created_at:%Y-%m-%d %H:%M} UTC",
        )
    return table


def _rebuild_table(status: Status) -> RenderableType:
    if not status.rebuilds:
        return Text(f"{SECTIONS[5]}: none", style="green")
    table = Table(title=f"{SECTIONS[5]}: {len(status.rebuilds):,}", title_justify="left")
    for column in ("what", "number", "state", "topic", "applied", "started"):
        table.add_column(column, justify="right" if column in ("number", "applied") else "left")
    for rebuild in status.rebuilds:
        share = f" ({rebuild.done / rebuild.total:.0%})" if rebuild.total else ""
        table.add_row(
            rebuild.kind,
            str(rebuild.number),
            rebuild.state,
            rebuild.topic,
            f"{rebuild.done:,}/{rebuild.total:,}{share}",
            f"{rebuild.created_at:%Y-%m-%d %H:%M} UTC",
        )
    return table


def render(status: Status) -> RenderableType:
    """The whole screen."""
    total = sum(group.lag for group in status.groups)
    headline = Text.assemble(
        ("wear status", "bold"),
        f" at {status.taken_at:%Y-%m-%d %H:%M:%S} UTC: total lag ",
        (f"{total:,}", "bold red" if total else "bold green"),
        ", dead letters ",
        f"{sum(d.messages or 0 for d in status.dlqs):,}",
    )
    return Group(
        headline,
        _lag_table(status),
        _dlq_table(status),
        _quota_table(status),
        _reauth_table(status),
        _backfill_table(status),
        _rebuild_table(status),
    )
