"""``python -m processors renormalize``: replay the document log through the current normalizer into a
new records generation, build a read-model version from it and switch the query API to it (Kappa).

The steps, in order (nothing changes before step 5):

1. refuse bad input (exit 2): a ``--since`` that is not a date or lies ahead, or stdin not a terminal
   without ``--yes`` (``--dry-run`` asks nothing);
2. the diff, always: the serving generation (the records topic of the served read-model version,
   from ``python -m projections versions --json``) and the document log are read to their ends; each
   document goes through the current normalizer; the latest records per key are compared
   (``processors.record_diff``) and the summary printed on stdout;
3. ``--dry-run`` ends here; otherwise the question (unless ``--yes``), and the renormalization lock
   (one at a time);
4. resume the unfinished generation of the same normalizer version and ``--since``, or register
   generation N (``<records topic>.g<N>`` and its ``.dlq`` twin, shaped like the records topic) in
   ``records_generations``: from its next batch on, the live normalizer writes it too;
5. ``--since``: copy the serving generation's records into it as they are (after the live
   normalizer committed past what it was working on at the registration);
6. the renormalizer (``processors.generation_fill.Renormalizer``) normalizes the document log from
   its start (``--since``: only the documents Kafka stored at or after that instant) into generation
   N, until the document offsets captured when it started; it keeps running;
7. ``python -m projections rebuild --records-topic <generation N> --yes [--bulk]`` builds a read-model
   version from it and switches to it (its progress shows on this terminal);
8. the renormalizer catches up with the document offsets captured after the switch and stops;
   generation N is ``complete``.

``python -m projections rollback`` serves the previous read-model version again, and with it the
previous generation: both stay complete, since the live normalizer writes every generation not
dropped. Exit codes: 0 done, 1 failed (Kafka or PostgreSQL unreachable, the rebuild failed), 2
refused, 130 interrupted (an unfinished generation resumes on the next run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

import asyncpg
import uvloop
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.logging import RichHandler

from infra.db import create_pool
from infra.member_keys import KeysUnavailable, MemberKeys, PooledKeys
from processors import generations
from processors.generation_fill import Renormalizer
from processors.generations import GenerationsUnavailable
from processors.log_reader import ReadStalled, spans, total
from processors.normalize import NORMALIZER_VERSION
from processors.normalizer_runner import Counts
from processors.projections_cli import ProjectionsCli, ProjectionsFailed
from processors.renormalize_steps import Failed, Interrupted, Options, Projections, Refused, Report, Steps
from processors.settings import Settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "Failed",
    "Interrupted",
    "Options",
    "Projections",
    "Refused",
    "Report",
    "ask_on_terminal",
    "command",
    "parse_since",
    "renormalize",
    "summary_line",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130

logger = logging.getLogger(__name__)
Ask = Callable[[str], bool]
_STDERR = Console(stderr=True)
_STDOUT = Console(soft_wrap=True)


# --- pure -------------------------------------------------------------------------------------------


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a date (midnight UTC) or an ISO 8601 time (UTC when it has no offset); Refused when
    it is neither or lies after ``now``."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            value = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            value = datetime.fromisoformat(text)
            value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise Refused(
            f"--since {text[:40]!r} is not a date (YYYY-MM-DD) or an ISO 8601 time (2025-11-20T06:00:00Z)"
        ) from None
    if value > now:
        raise Refused(f"--since {value.isoformat()} lies in the future: no document was stored after it")
    return value


def summary_line(number: int, topic_name: str, counts: Counts, seconds: float, served: bool) -> str:
    """The line printed when the renormalization ends."""
    rate = counts.documents / seconds if seconds > 0 else 0.0
    line = (
        f"re-normalized: {counts.documents:,} documents into generation {number} ({topic_name}) in "
        f"{seconds:,.1f} s ({rate:,.0f} documents/s): {counts.records:,} records, "
        f"{counts.dead_lettered:,} dead-lettered, {counts.erased:,} of erased members skipped"
    )
    if counts.skipped:
        line += f", {counts.skipped:,} stored before --since (their records copied as they were)"
    return line + ("; the read models serve it" if served else "")


def where(database_url: str) -> str:
    """host:port/database of a libpq URL, without user or password."""
    parts = urlsplit(database_url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


# --- the run ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _service_errors(settings: Settings) -> Iterator[None]:
    """Kafka and PostgreSQL failures as one line naming where (host:port), without a traceback."""
    try:
        yield
    except (KafkaError, ReadStalled) as exc:
        raise Failed(
            f"Kafka unreachable or failing at {settings.kafka.kafka_bootstrap_servers}: {type(exc).__name__}"
        ) from exc
    except (
        OSError,
        TimeoutError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        KeysUnavailable,
        GenerationsUnavailable,
    ) as exc:
        raise Failed(
            f"PostgreSQL unreachable or failing at {where(settings.postgres.database_url)}: "
            f"{type(exc).__name__}"
        ) from exc
    except ProjectionsFailed as exc:
        raise Failed(str(exc)) from exc


async def _run(
    settings: Settings,
    options: Options,
    projections: Projections,
    stop: asyncio.Event,
    confirmed: Callable[[], None],
    ask: Ask | None,
    console: Console,
    out: Console,
    normalizer_version: int,
    report: Report | None = None,
) -> str:
    run = Steps(settings, options, projections, stop, console, out, normalizer_version, report)
    if not (options.yes or options.dry_run) and ask is None and not sys.stdin.isatty():
        raise Refused("stdin is not a terminal: pass --yes to renormalize without a question (or --dry-run)")
    with _service_errors(settings):
        pool = await create_pool(settings.postgres, migrate=True, max_size=4)
    try:
        keys = PooledKeys(pool, MemberKeys(settings.vault.keyring()))
        with _service_errors(settings):
            serving = await projections.serving_topic(run.configured)
            old, document_spans = await run.diff(keys, serving)
        if options.dry_run:
            return "dry run: nothing changed"
        if options.since is not None and max(old.normalizer_versions, default=0) >= normalizer_version:
            raise Refused(
                f"--since keeps the records of older documents as they are: the re-normalized ones must "
                f"win ties, so NORMALIZER_VERSION ({normalizer_version}) must be above every version in "
                f"{serving} ({max(old.normalizer_versions)}); bump it in processors/normalize.py"
            )
        question = (
            f"This registers a new records generation ({run.configured}.g<N>), re-normalizes "
            f"{total(document_spans):,} document offsets of {run.documents} into it with normalizer version "
            f"{normalizer_version}, builds a read-model version from it and switches the query API to it "
            f"(`python -m projections rollback` serves {serving} again)."
        )
        if not options.yes and not (ask or ask_on_terminal)(question):
            raise Refused("not confirmed")
        confirmed()
        with _service_errors(settings):
            return await _fill_and_switch(run, pool, keys, serving)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), 10)


async def _fill_and_switch(run: Steps, pool: asyncpg.Pool, keys: PooledKeys, serving: str) -> str:
    started = time.monotonic()
    settings = run.settings
    async with pool.acquire() as lock:
        if not await generations.try_lock(lock):
            raise Refused("a renormalization is already running (python -m processors renormalize)")
        generation, name = await run.generation(lock, serving, len(await spans(settings.kafka, serving)))
        if run.options.since is not None and generation.copied_offsets is None:
            await run.copy(lock, generation.number, name, serving)
        renormalizer = Renormalizer(
            settings.kafka,
            group=f"{settings.processors.normalizer_group_id}-g{generation.number}",
            source=run.documents,
            target=name,
            keys=keys,
            normalizer_version=run.version,
            since=run.options.since,
        )
        ends = await spans(settings.kafka, run.documents)
        await generations.set_documents_offsets(lock, generation.number, {s.partition: s.end for s in ends})
        await renormalizer.start([span.partition for span in ends])
        try:
            await run.wait(renormalizer, ends, f"re-normalizing into {name}")
            code = EXIT_OK
            if serving == name:
                run.say(f"generation {generation.number} is served already: no rebuild")
            else:
                run.say(f"building a read-model version from {name} (python -m projections rebuild)")
                code = await run.projections.rebuild(name, bulk=run.options.bulk, stop=run.stop)
                if run.stop.is_set():
                    raise run.interrupted(
                        f"during the rebuild: generation {generation.number} ({name}) is kept; "
                        "run the same command again to resume"
                    )
            final = await spans(settings.kafka, run.documents)
            await run.wait(renormalizer, final, "catching up with the documents")
        finally:
            await renormalizer.stop()
        await generations.mark_complete(lock, generation.number, {s.partition: s.end for s in final})
    seconds = time.monotonic() - started
    line = summary_line(generation.number, name, renormalizer.counts, seconds, code == EXIT_OK)
    run.report.generation, run.report.topic, run.report.counts = generation.number, name, renormalizer.counts
    run.report.seconds, run.report.served = seconds, code == EXIT_OK
    if code != EXIT_OK:
        raise Failed(
            f"{line}; but the read-model rebuild failed (exit {code}): generation {generation.number} is "
            f"complete and kept, run `python -m projections rebuild --records-topic {name}` to "
            "serve it"
        )
    return line


def ask_on_terminal(question: str) -> bool:
    """Ask ``question`` on the terminal (stderr); True when the answer is yes."""
    _STDERR.print(question, markup=False, highlight=False, soft_wrap=True)
    try:
        answer = input('Type "yes" to go on: ')
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


@contextlib.asynccontextmanager
async def _signals(stop: asyncio.Event, handle: bool) -> AsyncIterator[Callable[[], None]]:
    """Yields ``confirmed()``: with ``handle``, from then on SIGINT and SIGTERM set ``stop``."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def confirmed() -> None:
        if handle and not installed:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)

    try:
        yield confirmed
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def renormalize(
    settings: Settings,
    options: Options,
    *,
    projections: Projections | None = None,
    stop: asyncio.Event | None = None,
    ask: Ask | None = None,
    console: Console | None = None,
    out: Console | None = None,
    normalizer_version: int = NORMALIZER_VERSION,
    handle_signals: bool = False,
    report: Report | None = None,
) -> int:
    """Run the renormalization; the exit code (see the module docstring). ``report`` is filled with
    what it found and did, as data.

    ``projections`` defaults to ``python -m projections`` in a child process; setting ``stop``
    interrupts it (with ``handle_signals``, SIGINT and SIGTERM do once the question is answered).
    """
    console = console or _STDERR
    out = out or _STDOUT
    stop = stop or asyncio.Event()
    try:
        async with _signals(stop, handle_signals) as confirmed:
            line = await _run(
                settings,
                options,
                projections or ProjectionsCli(),
                stop,
                confirmed,
                ask,
                console,
                out,
                normalizer_version,
                report,
            )
    except Refused as exc:
        console.print(f"refused, nothing changed: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_REFUSED
    except Failed as exc:
        console.print(f"renormalize failed: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    except Interrupted as exc:
        console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    out.print(line, markup=False, highlight=False)
    return EXIT_OK


def configure_logging() -> None:
    """Warnings and errors above the progress bars; aiokafka's own only when critical."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(name)s %(message)s",
        handlers=[RichHandler(console=_STDERR, show_path=False, rich_tracebacks=False)],
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def command(settings: Settings, options: Options) -> int:
    """``python -m processors renormalize``: :func:`renormalize`, interrupted cleanly by SIGINT or SIGTERM."""
    try:
        return uvloop.run(renormalize(settings, options, handle_signals=True))
    except KeyboardInterrupt:  # before the question was answered
        _STDERR.print("interrupted: nothing changed", markup=False, highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
