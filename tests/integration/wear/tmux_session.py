"""A terminal session under tmux for the ``wear`` tests: a tmux server of its own, panes polled for text.

``Terminal`` runs each session in a server on a socket of its own (killed at the end), 200 x 50, so the
sessions of parallel tests never meet. ``script`` writes the shell script a session runs: the command
with its environment, then ``<done>=<exit code>``, the pane kept open to be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
import uuid
from pathlib import Path

__all__ = ["Terminal", "script"]


class Terminal:
    """A tmux server of its own (200 x 50), for a terminal session of ``wear``."""

    def __init__(self) -> None:
        self.socket = f"wear-test-{uuid.uuid4().hex[:12]}"

    async def tmux(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        return out.decode()

    async def start(self, name: str, path: Path) -> None:
        """A session ``name`` running the shell script at ``path`` (see :func:`script`)."""
        await self.tmux(
            "new-session", "-d", "-s", name, "-x", "200", "-y", "50", f"sh {shlex.quote(str(path))}"
        )

    async def screen(self, name: str) -> str:
        return await self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", name)

    async def wait_for_text(self, name: str, *texts: str, timeout_s: float = 60) -> str:
        """Poll the pane until it shows every one of ``texts``; the screen then."""
        deadline = time.monotonic() + timeout_s
        while True:
            screen = await self.screen(name)
            if all(text in screen for text in texts):
                return screen
            assert time.monotonic() < deadline, f"the terminal never showed {texts}:\n{screen}"
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        with contextlib.suppress(AssertionError):
            await self.tmux("kill-server")


def script(path: Path, env: dict[str, str], command: str, done: str) -> Path:
    """A shell script running ``command`` in this checkout with ``env``, then printing ``done=<exit code>``
    and keeping the pane open (Ctrl-C reaches the command; the shell itself goes on)."""
    exports = "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())
    path.write_text(
        f"{exports}\nunset COLUMNS LINES\ntrap true INT\ncd {shlex.quote(os.getcwd())}\n"
        f"{command}\necho {done}=$?\nexec sleep 120\n",
        encoding="utf-8",
    )
    return path
