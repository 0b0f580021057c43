"""Key rotation: the stores whose rows are sealed under the vault's keyring, and what moving them did.

A *rewrappable* store keeps rows encrypted under a key of the keyring read from ``TOKEN_VAULT_KEYS``
(the first key seals, every key opens) and can re-seal the rows still under an older key:
``whoop_tokens`` (:class:`infra.vault.TokenVault`) and ``member_data_keys``
(:class:`infra.member_keys.MemberKeys`). ``python -m ingest vault rotate`` runs
:meth:`Rewrappable.rewrap` of each store of ``ingest.vault_rotation.rewrappable_stores``, in order,
and prints :func:`summary_line` of each; a new table wrapped by the same keyring joins that tuple.

Rotation is safe to interrupt and to run again: each batch is its own transaction, rows another
transaction holds are skipped (``FOR UPDATE SKIP LOCKED``) and counted as pending, and a row that
does not open is left as it is. :func:`rewrap_rows` is that walk, written once for every store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import asyncpg

__all__ = ["Reseal", "RewrapReport", "Rewrappable", "rewrap_rows", "summary_line"]


@dataclass(frozen=True)
class RewrapReport:
    """Counts of one store's rotation (never a key or a plaintext).

    ``moved``: re-sealed under the active key by this run; ``current``: already under it when the run
    started; ``unopenable``: sealed under a key id not configured, or tampered, left as they are;
    ``pending``: still under an older key after the run (locked by another transaction while it
    passed, or written meanwhile by a process that still seals with an older key): run again.
    """

    moved: int = 0
    current: int = 0
    unopenable: int = 0
    pending: int = 0

    @property
    def complete(self) -> bool:
        """True when every row that opens is now under the active key and none failed to open."""
        return self.unopenable == 0 and self.pending == 0


class Rewrappable(Protocol):
    """A store whose rows are sealed under the vault's keyring (see the module docstring)."""

    @property
    def table(self) -> str:
        """The table it owns, as the summary names it."""
        ...

    async def rewrap(self, db: asyncpg.Pool) -> RewrapReport:
        """Re-seal every row not under the active key, one transaction per batch."""
        ...


def summary_line(table: str, active_key_id: str, report: RewrapReport) -> str:
    """One line of counts for ``table``; key ids are labels, not secrets."""
    line = (
        f"{table}: {report.moved} moved to key {active_key_id!r}, {report.current} already under it, "
        f"{report.unopenable} do not open"
    )
    if report.pending:
        line += f", {report.pending} still under an older key (locked or written meanwhile: run again)"
    return line


Reseal = Callable[[asyncpg.Record], tuple[str, bytes, bytes]]
"""A row (``user_id``, ``key_id``, ``nonce`` and the sealed column) re-sealed: ``(key_id, nonce, sealed)``."""


async def rewrap_rows(
    db: asyncpg.Pool,
    *,
    table: str,
    sealed_column: str,
    active: str,
    reseal: Reseal,
    unopenable: type[Exception],
    extra_columns: str = "",
    batch: int = 100,
) -> RewrapReport:
    """Re-seal every row of ``table`` not under key ``active``, in ``user_id`` order, a batch per transaction.

    A row another transaction holds is skipped (pending); one whose ``reseal`` raises ``unopenable`` is
    counted and left as it is. ``table`` and the column names are the caller's constants.
    """
    current: int = await db.fetchval(f"SELECT count(*) FROM {table} WHERE key_id = $1", active)  # noqa: S608
    columns = f"user_id, key_id, nonce, {sealed_column}{extra_columns}"
    moved = failed = 0
    after = ""
    while True:
        async with db.acquire() as connection, connection.transaction():
            rows = await connection.fetch(
                f"SELECT {columns} FROM {table} WHERE key_id <> $1 AND user_id > $2 "  # noqa: S608
                "ORDER BY user_id LIMIT $3 FOR UPDATE SKIP LOCKED",
                active,
                after,
                batch,
            )
            for row in rows:
                try:
                    key_id, nonce, sealed = reseal(row)
                except unopenable:
                    failed += 1
                    continue
                await connection.execute(
                    f"UPDATE {table} SET key_id = $2, nonce = $3, {sealed_column} = $4, "  # noqa: S608
                    "updated_at = now() WHERE user_id = $1",
                    row["user_id"],
                    key_id,
                    nonce,
                    sealed,
                )
                moved += 1
        if len(rows) < batch:
            break
        after = rows[-1]["user_id"]
    left: int = await db.fetchval(f"SELECT count(*) FROM {table} WHERE key_id <> $1", active)  # noqa: S608
    return RewrapReport(moved, current, failed, max(0, left - failed))
