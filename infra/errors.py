"""The root of every error the pipeline raises on purpose.

    PipelineError (retriable: False)
    ├── each package's own errors (ingest.errors, processors.errors, ...) derive from it
    └── ...

Each class says whether retrying can help (``retriable``); retry loops branch on that flag, and a
non-retriable error on a consumer path sends the record to the topic's dead-letter twin.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["PipelineError"]


class PipelineError(Exception):
    """Base class of the pipeline's own errors."""

    retriable: ClassVar[bool] = False
