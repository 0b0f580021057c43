"""The progress bar of the long commands (rich, on stderr): done/total, rate, elapsed, ETA.

A task may set ``first`` (what earlier runs did: its rate is this run's); a task updated only once
shows this run's average rate instead of none.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["progress_bar"]


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:  # one update only (a fast load): this run's average
            speed = (task.completed - task.fields.get("first", 0)) / task.elapsed
        unit = task.fields.get("unit", "records")
        return Text("" if speed is None else f"{speed:,.0f} {unit}/s", style="progress.data.speed")


def progress_bar(console: Console) -> Progress:
    """A bar per task: ``add_task(description, total=..., unit="documents")``, then ``update``."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=4,
    )
