"""Where the local infrastructure keeps its files: the git-ignored run folder of the checkout."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEPLOY_DIR", "REPO_ROOT", "run_dir"]

DEPLOY_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEPLOY_DIR.parent


def run_dir() -> Path:
    """The run folder (``PIPELINE_RUN_DIR``, default ``<checkout>/run``), created on first use."""
    path = Path(os.environ.get("PIPELINE_RUN_DIR", str(REPO_ROOT / "run"))).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
