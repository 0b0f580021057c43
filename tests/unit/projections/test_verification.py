"""The pure parts of a version's verification: the accounting, the table-by-table comparison, their lines."""

from __future__ import annotations

from projections.verification import Accounting, Comparison, Verification, compare
from projections.versions import TableSum

SUMS = {"rm_cycles": TableSum(3, "11"), "rm_sleeps": TableSum(2, "7")}


def test_the_accounting_balances_when_every_record_read_went_somewhere() -> None:
    assert Accounting(seen=10, applied=7, dead_lettered=2, erased=1).balanced
    off = Accounting(seen=10, applied=6, dead_lettered=2, erased=1)
    assert off.balanced is False
    assert off.line().endswith(": OFF BY 1")
    assert Accounting(seen=10, applied=7, dead_lettered=2, erased=1).line() == (
        "accounting: 10 records read = 7 applied + 2 dead-lettered + 1 skipped (member erased): balanced"
    )


def test_an_accounting_that_cannot_be_told_is_not_a_failure() -> None:
    unknown = Accounting(seen=10, applied=None, dead_lettered=0, erased=0)
    assert unknown.balanced is None
    assert unknown.line().startswith("accounting: not checked")
    assert Verification(2, SUMS, unknown, Comparison(1, reason="x")).verified
    assert not Verification(2, SUMS, Accounting(10, 3, 0, 0), Comparison(1, reason="x")).verified


def test_tables_compare_by_row_count_and_checksum() -> None:
    assert compare(SUMS, dict(SUMS)) == {"rm_cycles": True, "rm_sleeps": True}
    other = {"rm_cycles": TableSum(3, "12")}
    assert compare(SUMS, other) == {"rm_cycles": False, "rm_sleeps": False}


def test_the_comparison_line_names_equal_and_different_tables_or_why_not_compared() -> None:
    line = Comparison(1, equal={"rm_cycles": True, "rm_sleeps": False}).line()
    assert line == "compared with version 1 at the same offsets: equal rm_cycles; DIFFERENT rm_sleeps"
    assert Comparison(1, reason="it projects g2").line() == "not compared with version 1: it projects g2"


def test_the_lines_start_with_the_row_counts() -> None:
    verification = Verification(2, SUMS, Accounting(5, 5, 0, 0), Comparison(1, reason="x"))
    assert verification.lines()[0] == "version 2: 5 rows (rm_cycles 3, rm_sleeps 2)"
