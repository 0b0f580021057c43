"""The steps of a renormalization (``processors.renormalize``): the diff, the generation, the copy, the wait.

:class:`Steps` holds what they share (settings, options, the stop event, the consoles): :meth:`~Steps.diff`
reads the serving generation and the documents and prints the summary; :meth:`~Steps.generation`
resumes the unfinished generation of the same normalizer version and ``--since`` or registers a new
one (its topics made first); :meth:`~Steps.copy` copies the serving generation into it (``--since``);
:meth:`~Steps.wait` follows the renormalizer to given document offsets with a progress bar. The
errors say how the command ends: :class:`Refused` (exit 2), :class:`Failed` (exit 1),
:class:`Interrupted` (exit 130), each one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from rich.console import Console

from infra.member_keys import PooledKeys
from infra.progress_bar import progress_bar
from infra.topic_admin import ensure_topics
from processors import generations
from processors.generation_fill import Renormalizer, copy_generation, live_settled
from processors.generations import Generation
from processors.log_reader import Span, spans, total
from processors.normalizer_runner import Counts
from processors.record_diff import Diff, compare, render
from processors.renormalize_diff import Read, Reading, read_generation, renormalize_documents
from processors.settings import Settings
from schemas.topics import TopicSpec, generation_topic, topic

__all__ = ["Failed", "Interrupted", "Options", "Projections", "Refused", "Report", "Steps"]


class Refused(Exception):
    """Nothing was done (exit 2); the message is one line."""


class Failed(Exception):
    """The renormalization could not go on (exit 1); one line, no secret."""


class Interrupted(Exception):
    """SIGINT or SIGTERM (exit 130); the message says what is left."""


class Projections(Protocol):
    """What a re-normalization needs of the projections (``processors.projections_cli.ProjectionsCli``)."""

    async def serving_topic(self, configured: str) -> str: ...

    async def rebuild(self, topic: str, *, bulk: bool, stop: asyncio.Event) -> int: ...


@dataclass(frozen=True)
class Options:
    """The command line's choices."""

    dry_run: bool = False
    since: datetime | None = None
    yes: bool = False
    bulk: bool = False


@dataclass
class Report:
    """What a renormalization found and did, as data (``wear renormalize --json``); filled as it goes."""

    serving: str | None = None
    diff: Diff | None = None
    read: dict[str, int] | None = None  # the counts of the diff's "read:" line (not the values)
    generation: int | None = None
    topic: str | None = None
    counts: Counts | None = None
    seconds: float | None = None
    served: bool = False


def _like(configured: str, partitions: int) -> TopicSpec:
    """The registry entry a generation of ``configured`` is shaped like, with its partition count."""
    try:
        base = topic(configured)
    except KeyError:  # a records topic named outside the registry (tests): shaped like wear.records.v1
        base = topic("wear.records.v1")
    return replace(base, partitions=partitions)


class Steps:
    """One renormalization: the state its steps share."""

    def __init__(
        self,
        settings: Settings,
        options: Options,
        projections: Projections,
        stop: asyncio.Event,
        console: Console,
        out: Console,
        normalizer_version: int,
        report: Report | None = None,
    ) -> None:
        self.settings = settings
        self.report = Report() if report is None else report
        self.options = options
        self.projections = projections
        self.stop = stop
        self.console = console
        self.out = out
        self.version = normalizer_version
        self.configured = settings.processors.records_topic
        self.documents = settings.fetcher.documents_topic

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def interrupted(self, what: str) -> Interrupted:
        return Interrupted(f"interrupted {what}")

    # --- the diff

    async def diff(self, keys: PooledKeys, serving: str) -> tuple[Read, list[Span]]:
        """Print what re-normalizing would change; the serving generation's side and the documents' spans."""
        kafka = self.settings.kafka
        record_spans, document_spans = await spans(kafka, serving), await spans(kafka, self.documents)
        with progress_bar(self.console) as bar:

            def reading(what: str, topic: str, of: list[Span], unit: str) -> Reading:
                task = bar.add_task(f"{what} {topic}", total=total(of), unit=unit)
                return Reading(kafka, topic, of, keys, lambda n: bar.update(task, completed=n), self.stop)

            old = await read_generation(reading("reading", serving, record_spans, "records"))
            if self.stop.is_set():
                raise self.interrupted("during the diff: nothing changed")
            new = await renormalize_documents(
                reading("normalizing", self.documents, document_spans, "documents"),
                normalizer_version=self.version,
                since=self.options.since,
                over=old.latest if self.options.since is not None else None,
            )
            if self.stop.is_set():
                raise self.interrupted("during the diff: nothing changed")
        outcome = compare(old.latest, new.latest, keys=new.keys if self.options.since is not None else None)
        self.report.serving, self.report.diff = serving, outcome
        self.report.read = {
            "records": old.messages,
            "documents": new.messages,
            "renormalized": new.renormalized,
            "refused": new.refused,
            "erased": new.erased + old.erased,
            "unreadable": new.unreadable + old.unreadable,
        }
        scope = (
            ""
            if self.options.since is None
            else f" (documents stored since {self.options.since.isoformat()})"
        )
        for line in render(outcome, old_name=serving, new_name=f"normalizer version {self.version}{scope}"):
            self.out.print(line, markup=False, highlight=False)
        self.out.print(
            f"read: {old.messages:,} records, {new.messages:,} documents "
            f"({new.renormalized:,} re-normalized, "
            f"{new.refused:,} refused by the normalizer (they go to the dead letters again), "
            f"{new.erased + old.erased:,} values of erased members skipped, "
            f"{new.unreadable + old.unreadable:,} unreadable)",
            markup=False,
            highlight=False,
        )
        return old, document_spans

    # --- the generation

    async def generation(
        self, connection: generations.Connection, serving: str, partitions: int
    ) -> tuple[Generation, str]:
        """The unfinished generation to resume, or a new one (topics made, then registered); and its topic."""
        resumed: tuple[Generation, str] | None = None
        for found in reversed(await generations.all_generations(connection)):
            if found.state != "filling" or found.topic is None:
                continue
            if resumed is None and (found.normalizer_version, found.since) == (
                self.version,
                self.options.since,
            ):
                resumed = (found, found.topic)
                continue
            if found.topic == serving:
                raise Refused(
                    f"generation {found.number} ({found.topic}) is unfinished but served: run "
                    f"`python -m projections rollback` first, or renormalize with normalizer version "
                    f"{found.normalizer_version}"
                )
            await generations.drop(connection, found.number)
            self.say(f"generation {found.number} ({found.topic}), left unfinished by another run, is dropped")
        spec = _like(self.configured, partitions)
        if resumed is not None:
            generation, name = resumed
            await ensure_topics(
                self.settings.kafka, [replace(spec, name=name), replace(spec, name=name).dlq()]
            )
            self.say(f"resuming generation {generation.number} ({name})")
            return resumed
        number = await generations.next_number(connection)
        name = generation_topic(self.configured, number)
        await ensure_topics(self.settings.kafka, [replace(spec, name=name), replace(spec, name=name).dlq()])
        made = await generations.register(
            connection,
            number,
            name,
            normalizer_version=self.version,
            since=self.options.since,
            documents_topic=self.documents,
        )
        self.say(
            f"registered generation {number} ({name}): the live normalizer writes it from its next batch"
        )
        return made, name

    async def copy(self, connection: generations.Connection, number: int, target: str, serving: str) -> None:
        """``--since``: the serving generation's records, copied as they are, before any re-normalized one."""
        kafka = self.settings.kafka
        at_registration = await spans(kafka, self.documents)
        group = self.settings.processors.normalizer_group_id
        if not await live_settled(kafka, group, self.documents, at_registration):
            self.say("the live normalizer's commits did not move for 10 s: copying without waiting for it")
        source = await spans(kafka, serving)
        with progress_bar(self.console) as bar:
            task = bar.add_task(f"copying {serving}", total=total(source), unit="records")
            await copy_generation(
                kafka, serving, target, source, lambda n: bar.update(task, completed=n), self.stop
            )
        if self.stop.is_set():
            raise self.interrupted(f"while copying: run the same command again to resume generation {number}")
        await generations.set_copied(connection, number, serving, {s.partition: s.end for s in source})

    async def wait(self, renormalizer: Renormalizer, ends: Sequence[Span], label: str) -> None:
        with progress_bar(self.console) as bar:
            task = bar.add_task(label, total=total(ends), unit="documents")
            reached = await renormalizer.wait_until(ends, lambda n: bar.update(task, completed=n), self.stop)
        if not reached:
            raise self.interrupted(
                f"while re-normalizing: generation {renormalizer.target} is kept; run the same command again "
                "to resume it"
            )
