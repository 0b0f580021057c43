"""Writing one benchmark's section of ``BENCHMARKS.md``: only that section is replaced, the rest kept."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["BENCHMARKS", "write_section"]

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(heading: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace the section that starts with ``heading`` (up to the next ``## ``) by ``text``, or append it."""
    current = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current, count=1)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current.rstrip("\n") + "\n")
