"""The dry-run diff (pure): latest record per key, counts per type and per field, envelope apart, lines."""

from __future__ import annotations

from typing import Any

import orjson

from processors.record_diff import ENVELOPE_FIELDS, compare, latest, render


def cycle(cycle_id: int, kcal: float | None, *, version: int = 1, strain: float = 10.0) -> dict[str, Any]:
    return {
        "event_type": "CycleRecorded",
        "event_id": f"e-{cycle_id}-{version}",
        "normalizer_version": version,
        "cycle_id": cycle_id,
        "strain": strain,
        "energy_kcal": kcal,
    }


def sleep(sleep_id: str, *, version: int = 1) -> dict[str, Any]:
    return {
        "event_type": "SleepRecorded",
        "event_id": f"s-{sleep_id}-{version}",
        "normalizer_version": version,
        "sleep_id": sleep_id,
        "rem_ms": 1000,
    }


def test_latest_keeps_the_last_value_per_key_and_a_tombstone_removes_it() -> None:
    items = [(b"a", 1), (b"b", 2), (b"a", 3), (b"b", None), (b"c", 4)]
    assert latest(items) == {b"a": 3, b"c": 4}
    assert latest([(b"b", None), (b"d", 5)], into={b"b": 2, b"x": 9}) == {b"x": 9, b"d": 5}


def test_a_unit_fix_shows_as_exactly_its_field_with_the_envelope_apart() -> None:
    old = {b"u:cycle:1": cycle(1, 8368.0), b"u:cycle:2": cycle(2, None), b"u:sleep:s": sleep("s")}
    new = {
        b"u:cycle:1": cycle(1, 2000.0, version=2),
        b"u:cycle:2": cycle(2, None, version=2),
        b"u:sleep:s": sleep("s", version=2),
    }
    diff = compare(old, new)
    assert diff.changed_fields == {"CycleRecorded": {"energy_kcal": 1}}
    assert (diff.of("CycleRecorded").changed, diff.of("CycleRecorded").envelope_only) == (1, 1)
    assert diff.of("SleepRecorded").envelope_only == 1
    assert dict(diff.envelope) == {"event_id": 3, "normalizer_version": 3}
    assert set(diff.envelope) == ENVELOPE_FIELDS
    [example] = diff.examples
    assert (example.key, example.record_type, example.field, example.old, example.new) == (
        "u:cycle:1",
        "CycleRecorded",
        "energy_kcal",
        8368.0,
        2000.0,
    )


def test_added_removed_unchanged_and_a_type_change() -> None:
    deleted = {"event_type": "CycleDeleted", "event_id": "d", "normalizer_version": 1, "cycle_id": 3}
    old = {b"k:1": cycle(1, 1.0), b"k:2": cycle(2, 2.0), b"k:3": cycle(3, 3.0)}
    new = {b"k:1": cycle(1, 1.0), b"k:3": deleted, b"k:4": sleep("x")}
    diff = compare(old, new)
    assert diff.of("CycleRecorded").unchanged == 1
    assert diff.of("CycleRecorded").removed == 2  # k:2 gone, k:3 became a deletion
    assert (diff.of("CycleDeleted").added, diff.of("SleepRecorded").added) == (1, 1)
    assert (diff.total("added"), diff.total("removed"), diff.total("changed")) == (2, 2, 0)
    assert diff.changed_fields == {} and not diff.examples


def test_keys_limit_the_comparison_and_examples_are_capped_per_field() -> None:
    old = {f"k:{n}".encode(): cycle(n, float(n)) for n in range(10)}
    new = {f"k:{n}".encode(): cycle(n, float(n) + 1, strain=1.0) for n in range(10)}
    diff = compare(old, new, examples_per_field=2)
    assert diff.changed_fields == {"CycleRecorded": {"energy_kcal": 10, "strain": 10}}
    assert [(e.key, e.field) for e in diff.examples] == [
        ("k:0", "energy_kcal"),
        ("k:0", "strain"),
        ("k:1", "energy_kcal"),
        ("k:1", "strain"),
    ]
    only = compare(old, new, keys={b"k:3", b"k:missing"})
    assert only.of("CycleRecorded").changed == 1 and only.of("CycleRecorded").compared == 1


def test_render_lays_out_counts_fields_envelope_and_examples() -> None:
    long_value = "x" * 200
    old = {b"u:cycle:1": {**cycle(1, 8368.0), "note": "a"}, b"u:sleep:s": sleep("s")}
    new = {b"u:cycle:1": {**cycle(1, 2000.0, version=2), "note": long_value}, b"u:sleep:s": sleep("s")}
    lines = render(compare(old, new), old_name="wear.records.v1", new_name="normalizer version 2")
    text = "\n".join(lines)
    assert lines[0] == "diff: wear.records.v1 -> normalizer version 2"
    assert lines[2].split() == ["CycleRecorded", "0", "0", "1", "0", "0"]
    assert "  CycleRecorded.note: 1" in lines
    assert "  CycleRecorded.energy_kcal: 1" in lines
    assert (
        "envelope fields (change with the normalizer version, not counted as changes): event_id 1, " in text
    )
    assert "u:cycle:1 CycleRecorded.energy_kcal: 8368.0 -> 2000.0" in text
    assert "'xxx" in text and "..." in text and long_value not in text  # long values are cut
    total = next(line for line in lines if line.lstrip().startswith("total"))
    assert total.split()[1:] == ["0", "0", "1", "0", "1"]
    assert "changed fields: none" in render(compare(old, old), old_name="a", new_name="b")


def test_json_text_values_are_compared_as_their_objects() -> None:
    old = {b"u:cycle:1": orjson.dumps(cycle(1, 8368.0)), b"u:cycle:2": orjson.dumps(cycle(2, 1.0))}
    new: dict[bytes, bytes | dict[str, Any]] = {
        b"u:cycle:1": orjson.dumps(cycle(1, 2000.0, version=2)),
        b"u:cycle:2": cycle(2, 1.0),
    }
    diff = compare(old, new)
    assert diff.changed_fields == {"CycleRecorded": {"energy_kcal": 1}}
    assert (diff.of("CycleRecorded").unchanged, diff.examples[0].old) == (1, 8368.0)
    odd = compare({b"k": b"[1]"}, {b"k": b"[2]"})
    assert odd.of("?").unchanged == 1  # not an object: nothing to compare field by field
