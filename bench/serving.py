"""Waiting for a server a benchmark started as a subprocess to answer HTTP."""

from __future__ import annotations

import subprocess
import time

import httpx

__all__ = ["wait_until_serving"]


def wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Return once ``url`` answers; raise when ``process`` exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        return
    raise RuntimeError(f"{url} did not answer")
