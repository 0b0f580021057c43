"""Where ``wear export`` writes: one JSON-lines file, or a directory of Parquet files, one per type.

Both stream with bounded memory. :class:`JsonLinesSink` appends each line to a buffered file;
:class:`ParquetSink` keeps at most :data:`ROW_GROUP` rows per type in memory and writes them as one
row group of that type's file (``pyarrow.parquet.ParquetWriter``, explicit schema:
``wear.export_schemas``); items are turned into Arrow columns as they come, so what waits is
compact. Every file is written under a ``.partial`` name and renamed into place only
when the export succeeded (:meth:`finish`); :meth:`abort` removes the partial files, so a failed
export never leaves a file that looks complete.

:func:`check_out` decides, before anything is read, whether ``--out`` can be written (a bad one is
bad input, exit 2).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from wear.common import usage
from wear.export_schemas import schema_of

__all__ = ["ROW_GROUP", "Format", "JsonLinesSink", "ParquetSink", "Sink", "check_out", "file_name"]

Format = Literal["jsonl", "parquet"]
ROW_GROUP = 10_000
"""Rows per Parquet row group: the most rows of one type held in memory at once."""
_PARTIAL = ".partial"


def file_name(name: str) -> str:
    """The Parquet file of type ``name`` inside ``--out``."""
    return f"{name}.parquet"


def check_out(out: Path, fmt: Format) -> None:
    """Refuse (exit 2) an ``--out`` that cannot be written: jsonl wants a file, parquet a directory."""
    shown = str(out)[:120]
    if fmt == "jsonl":
        if out.is_dir():
            usage(f"--out {shown} is a directory: --format jsonl writes one file")
        parent = out.parent
    else:
        if out.exists() and not out.is_dir():
            usage(f"--out {shown} is a file: --format parquet writes a directory of files, one per type")
        parent = out if out.is_dir() else out.parent
    if not parent.is_dir():
        usage(f"--out {shown} cannot be written: {str(parent)[:120]} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        usage(f"--out {shown} cannot be written: no write permission on {str(parent)[:120]}")


class Sink(Protocol):
    """What an export writes to: items of a named type, in batches."""

    def write(self, name: str, items: Sequence[Any]) -> None: ...

    def finish(self) -> dict[str, str]:
        """Close and rename every file into place; the files written, by type (jsonl: one, ``*``)."""
        ...

    def abort(self) -> None: ...


class JsonLinesSink:
    """One file of JSON lines, in the order the items come; ``line(item)`` gives each line's bytes."""

    def __init__(self, out: Path, line: Callable[[Any], bytes]) -> None:
        self._out = out
        self._partial = out.with_name(out.name + _PARTIAL)
        self._line = line
        self._file: IO[bytes] = self._partial.open("wb", buffering=1 << 20)

    def write(self, name: str, items: Sequence[Any]) -> None:
        line = self._line
        self._file.write(b"".join(line(item) + b"\n" for item in items))

    def finish(self) -> dict[str, str]:
        self._file.close()
        self._partial.replace(self._out)
        return {"*": str(self._out)}

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


class ParquetSink:
    """A directory of Parquet files, one per type in ``names`` (written even when it stays empty)."""

    def __init__(
        self,
        out: Path,
        names: Sequence[str],
        table: Callable[[str, Sequence[Any]], pa.Table],
        *,
        row_group: int = ROW_GROUP,
    ) -> None:
        out.mkdir(exist_ok=True)
        self._out = out
        self._table = table
        self._row_group = row_group
        self._pending: dict[str, list[pa.Table]] = {name: [] for name in names}
        self._rows = dict.fromkeys(names, 0)
        self._writers: dict[str, pq.ParquetWriter] = {}
        try:
            for name in names:
                self._writers[name] = pq.ParquetWriter(
                    self._partial(name), schema_of(name), compression="zstd"
                )
        except BaseException:
            self.abort()
            raise

    def _partial(self, name: str) -> Path:
        return self._out / (file_name(name) + _PARTIAL)

    def write(self, name: str, items: Sequence[Any]) -> None:
        """Turn ``items`` into Arrow columns now (compact), and write a row group once enough wait."""
        if not items:
            return
        self._pending[name].append(self._table(name, items))
        self._rows[name] += len(items)
        if self._rows[name] >= self._row_group:
            self._flush(name)

    def _flush(self, name: str) -> None:
        pending = self._pending[name]
        if pending:
            table = pa.concat_tables(pending)
            pending.clear()
            self._rows[name] = 0
            self._writers[name].write_table(table, row_group_size=self._row_group)

    def finish(self) -> dict[str, str]:
        for name in self._pending:
            self._flush(name)
        for writer in self._writers.values():
            writer.close()
        files: dict[str, str] = {}
        for name in self._writers:
            final = self._out / file_name(name)
            self._partial(name).replace(final)
            files[name] = str(final)
        return files

    def abort(self) -> None:
        for name, writer in self._writers.items():
            with contextlib.suppress(OSError, pa.ArrowException):
                writer.close()
            self._partial(name).unlink(missing_ok=True)
        self._writers.clear()
