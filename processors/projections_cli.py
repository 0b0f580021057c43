"""The projections' command line, run as a subprocess: a re-normalization's way to the read models.

The processors never import the projections (one stage, one package); what they need of them goes
through ``python -m projections``:

- :meth:`ProjectionsCli.serving_topic`: ``versions --json``, the records topic of the served read-model
  version, i.e. the serving records generation (a version without a topic of its own projects the
  configured records topic);
- :meth:`ProjectionsCli.rebuild`: ``rebuild --records-topic <generation> --yes [--bulk]``, which builds a
  read-model version from a generation and switches the query API to it; its progress bar and lines
  go to this process's terminal.

:func:`serving_records_topic` (pure) reads the ``versions --json`` document.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from infra.errors import PipelineError

__all__ = ["ProjectionsCli", "ProjectionsFailed", "serving_records_topic"]

_TIMEOUT_S = 120.0


class ProjectionsFailed(PipelineError):
    """``python -m projections`` failed or answered what this module cannot read (one line)."""


def _versions(document: Any) -> list[Mapping[str, Any]]:
    items = document.get("versions") if isinstance(document, Mapping) else document
    if not isinstance(items, list):
        raise ProjectionsFailed("`python -m projections versions --json` printed no list of versions")
    return [item for item in items if isinstance(item, Mapping)]


def serving_records_topic(document: Any, configured: str) -> str:
    """The records topic of the served version in a ``versions --json`` document (None: ``configured``)."""
    served = document.get("serving") if isinstance(document, Mapping) else None
    for item in _versions(document):
        number = item.get("version", item.get("number"))
        if (
            item.get("state") == "serving"
            or item.get("serving") is True
            or (served is not None and number == served)
        ):
            topic = item.get("records_topic")
            return topic if isinstance(topic, str) and topic else configured
    raise ProjectionsFailed("`python -m projections versions --json` names no served version")


class ProjectionsCli:
    """``python -m projections`` in a child process (``env`` None: this process's environment)."""

    def __init__(self, *, python: str = sys.executable, env: Mapping[str, str] | None = None) -> None:
        self._python = python
        self._env = None if env is None else dict(env)

    def _command(self, args: Sequence[str]) -> list[str]:
        return [self._python, "-m", "projections", *args]

    async def serving_topic(self, configured: str) -> str:
        """The serving generation's topic, from ``python -m projections versions --json``."""
        child = await asyncio.create_subprocess_exec(
            *self._command(["versions", "--json"]),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env,
        )
        try:
            out, err = await asyncio.wait_for(child.communicate(), _TIMEOUT_S)
        except TimeoutError:
            child.kill()
            await child.wait()
            raise ProjectionsFailed(
                f"`python -m projections versions --json` did not answer within {_TIMEOUT_S:.0f} s"
            ) from None
        if child.returncode != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else f"exit {child.returncode}"
            raise ProjectionsFailed(f"`python -m projections versions --json` failed: {why}")
        try:
            document = orjson.loads(out)
        except orjson.JSONDecodeError as exc:
            raise ProjectionsFailed("`python -m projections versions --json` printed no JSON") from exc
        return serving_records_topic(document, configured)

    async def rebuild(self, topic: str, *, bulk: bool, stop: asyncio.Event) -> int:
        """Run ``rebuild --records-topic <topic> --yes [--bulk]``; its exit code. When ``stop`` is set
        meanwhile, the child gets SIGTERM (it stops cleanly, its version resumable)."""
        args = ["rebuild", "--records-topic", topic, "--yes", *(["--bulk"] if bulk else [])]
        child = await asyncio.create_subprocess_exec(
            *self._command(args), stdin=asyncio.subprocess.DEVNULL, env=self._env
        )
        waiting = asyncio.create_task(child.wait())
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                child.terminate()
            return await waiting
        finally:
            stopping.cancel()
            if child.returncode is None:  # cancelled: do not leave the child behind
                child.kill()
                await child.wait()
