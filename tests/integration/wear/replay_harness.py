"""What the tests of the replay commands and ``wear topics`` share: ``wear`` run as a real process.

``wear(env, ARGS)`` runs ``python -m wear ARGS`` with stdin not a terminal (or a terminal that
answers), and returns its exit code, stdout and stderr apart: the JSON goes to stdout, the lines,
the progress bar and the refusals to stderr.
"""

from __future__ import annotations

import asyncio
import os
import pty
import sys

import orjson

from projections.settings import Settings
from tests.integration.projections.rebuild_harness import env_of

__all__ = ["env_with", "one_line", "wear", "wear_json"]


def env_with(settings: Settings, **changed: str) -> dict[str, str]:
    """The environment of a ``wear`` process on ``settings`` (the test's schema and topic), with changes."""
    env = env_of(settings)
    env["PIPELINE_ENV"] = "dev"
    env.update(changed)
    return env


async def wear(env: dict[str, str], *args: str, answer: bytes | None = None) -> tuple[int, str, str]:
    """``python -m wear ARGS``: exit code, stdout, stderr. With ``answer``, stdin is a terminal that
    types it; otherwise stdin is not a terminal."""
    terminal = stdin = None
    if answer is not None:
        terminal, stdin = pty.openpty()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wear",
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        if stdin is not None and terminal is not None and answer is not None:
            os.close(stdin)
            stdin = None
            os.write(terminal, answer)  # kept by the terminal until the command reads it
        out, err = await asyncio.wait_for(child.communicate(), 200)
    finally:
        for fd in (terminal, stdin):
            if fd is not None:
                os.close(fd)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def wear_json(env: dict[str, str], *args: str) -> tuple[object, str]:
    """``python -m wear ARGS --json`` that must succeed: its JSON document, and its stderr."""
    code, out, err = await wear(env, *args, "--json")
    assert code == 0, err
    return orjson.loads(out), err


def one_line(err: str) -> str:
    """The only line of ``err``: no traceback, nothing else."""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err, err
    return err.rstrip("\n")
