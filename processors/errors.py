"""The processors' own errors.

    PipelineError (infra.errors; retriable: False)
    └── NormalizationError (retriable: False)
            a WHOOP document that cannot become canonical records: the runner dead-letters it

Each class says whether retrying can help (``retriable``). A non-retriable error on a consumer path
sends the record to the topic's dead-letter twin, with the reason and the origin offset.
"""

from __future__ import annotations

from typing import ClassVar

from infra.errors import PipelineError

__all__ = ["NormalizationError"]


class NormalizationError(PipelineError):
    """A document the normalizer cannot turn into records; ``reason`` says precisely why.

    The normalizer is a pure function, so the same document fails the same way every time:
    retrying cannot help, the document goes to the dead-letter topic.
    """

    retriable: ClassVar[bool] = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
