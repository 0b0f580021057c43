"""Offsets, WHOOP timestamps and the member's local dates, across DST changes and travel."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.local_time import (
    cycle_local_date,
    format_offset,
    local_date,
    parse_instant,
    parse_offset,
)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("-04:00", timedelta(hours=-4)),
        ("+05:30", timedelta(hours=5, minutes=30)),
        ("+0545", timedelta(hours=5, minutes=45)),
        ("Z", timedelta(0)),
        ("z", timedelta(0)),
        ("+00:00", timedelta(0)),
        ("-00:00", timedelta(0)),
        ("+14:00", timedelta(hours=14)),
        ("-12:00", timedelta(hours=-12)),
        ("-09:30", timedelta(hours=-9, minutes=-30)),
    ],
)
def test_offsets_parse(text: str, offset: timedelta) -> None:
    assert parse_offset(text) == offset


@pytest.mark.parametrize(
    "text",
    ["", "EST", "-4", "-04", "+5:30", "+05:60", "+14:01", "-15:00", "04:00", "+04:00 ", "UTC", "+04:00Z"],
)
def test_offsets_that_are_not_offsets_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_offset(text)


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(hours=-4), "-04:00"),
        (timedelta(hours=5, minutes=30), "+05:30"),
        (timedelta(0), "Z"),
        (timedelta(hours=-9, minutes=-30), "-09:30"),
    ],
)
def test_offsets_format_as_whoop_writes_them(offset: timedelta, text: str) -> None:
    assert format_offset(offset) == text


@given(st.integers(-14 * 60, 14 * 60))
def test_offsets_round_trip(minutes: int) -> None:
    offset = timedelta(minutes=minutes)
    assert parse_offset(format_offset(offset)) == offset


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-14T02:41:07.312Z", datetime(2025, 10, 14, 2, 41, 7, 312000, tzinfo=UTC)),
        ("2025-10-14T02:41:07Z", datetime(2025, 10, 14, 2, 41, 7, tzinfo=UTC)),
        ("2025-10-14t02:41:07.312z", datetime(2025, 10, 14, 2, 41, 7, 312000, tzinfo=UTC)),
        ("2025-10-14T02:41:07.3", datetime(2025, 10, 14, 2, 41, 7, 300000, tzinfo=UTC)),  # no offset: UTC
        ("2025-10-14 02:41:07.312+00:00", datetime(2025, 10, 14, 2, 41, 7, 312000, tzinfo=UTC)),
        ("2025-10-13T22:41:07.312-04:00", datetime(2025, 10, 14, 2, 41, 7, 312000, tzinfo=UTC)),
        ("2025-10-14T08:11:07.312+0530", datetime(2025, 10, 14, 2, 41, 7, 312000, tzinfo=UTC)),
        # more than microseconds: truncated, never rounded up into the next second
        ("2025-10-14T02:41:07.9999999999Z", datetime(2025, 10, 14, 2, 41, 7, 999999, tzinfo=UTC)),
    ],
)
def test_whoop_timestamps_parse_to_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2025-10-14",
        "2025-10-14T02:41Z",
        "2025-W42-2T02:41:07Z",
        "20251014T024107Z",
        "2025-10-14T24:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-10-14T02:41:07,312Z",
        "2025-10-14T02:41:07.Z",
        "1760409667312",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        " 2025-10-14T02:41:07Z",
    ],
)
def test_things_that_are_not_rfc3339_instants_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="date-time"):
        parse_instant(text)


def test_the_local_date_is_the_utc_instant_on_the_records_own_clock() -> None:
    moment = _utc("2025-10-14T03:30:00+00:00")
    assert local_date(moment, parse_offset("-04:00")) == date(2025, 10, 13)
    assert local_date(moment, parse_offset("Z")) == date(2025, 10, 14)
    assert local_date(moment, parse_offset("+01:00")) == date(2025, 10, 14)
    assert local_date(moment, parse_offset("+14:00")) == date(2025, 10, 14)
    assert local_date(_utc("2025-10-14T10:00:00+00:00"), parse_offset("+14:00")) == date(2025, 10, 15)
    assert local_date(_utc("2025-10-14T11:59:59.999+00:00"), parse_offset("-12:00")) == date(2025, 10, 13)


def test_a_local_date_beyond_the_calendar_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="local date out of range"):
        local_date(datetime.max.replace(tzinfo=UTC), timedelta(hours=14))


def _cycle_label(local_wall: str, zone: str) -> tuple[date, str]:
    """The day label of a cycle whose sleep onset is ``local_wall`` in ``zone``, and its offset."""
    moment = datetime.fromisoformat(local_wall).replace(tzinfo=ZoneInfo(zone))
    offset = moment.utcoffset()
    assert offset is not None
    return cycle_local_date(moment.astimezone(UTC), offset), format_offset(offset)


@pytest.mark.parametrize(
    ("onset", "zone", "label", "offset"),
    [
        # the §12 item 12 examples: onset 22:41 on Oct 13 is Oct 14, and so is 01:30 on Oct 14
        ("2025-10-13T22:41:07", "America/New_York", date(2025, 10, 14), "-04:00"),
        ("2025-10-14T01:30:00", "America/New_York", date(2025, 10, 14), "-04:00"),
        # the noon cut-off
        ("2025-10-14T11:59:59.999", "America/New_York", date(2025, 10, 14), "-04:00"),
        ("2025-10-14T12:00:00", "America/New_York", date(2025, 10, 15), "-04:00"),
        # US DST ends 2025-11-02 02:00: the night it ends and the night after
        ("2025-11-01T23:30:00", "America/New_York", date(2025, 11, 2), "-04:00"),
        ("2025-11-02T23:10:00", "America/New_York", date(2025, 11, 3), "-05:00"),
        ("2025-11-02T00:45:00", "America/New_York", date(2025, 11, 2), "-04:00"),
        # US DST starts 2025-03-09 02:00
        ("2025-03-08T23:45:00", "America/New_York", date(2025, 3, 9), "-05:00"),
        ("2025-03-09T22:15:00", "America/New_York", date(2025, 3, 10), "-04:00"),
        # Europe: BST ends 2025-10-26, CEST starts 2025-03-30
        ("2025-10-25T23:20:00", "Europe/London", date(2025, 10, 26), "+01:00"),
        ("2025-10-26T22:50:00", "Europe/London", date(2025, 10, 27), "Z"),
        ("2025-03-30T01:15:00", "Europe/Berlin", date(2025, 3, 30), "+01:00"),
        # southern hemisphere (Sydney DST starts 2025-10-05) and half-hour zones
        ("2025-10-04T23:00:00", "Australia/Sydney", date(2025, 10, 5), "+10:00"),
        ("2025-10-05T23:00:00", "Australia/Sydney", date(2025, 10, 6), "+11:00"),
        ("2025-10-14T00:20:00", "Asia/Kolkata", date(2025, 10, 14), "+05:30"),
        ("2025-10-13T21:40:00", "Asia/Kathmandu", date(2025, 10, 14), "+05:45"),
        # the extremes in use
        ("2025-10-13T22:00:00", "Pacific/Kiritimati", date(2025, 10, 14), "+14:00"),
        ("2025-10-13T22:00:00", "Etc/GMT+12", date(2025, 10, 14), "-12:00"),
    ],
)
def test_a_cycle_is_labelled_with_the_date_of_the_morning_after_its_onset(
    onset: str, zone: str, label: date, offset: str
) -> None:
    assert _cycle_label(onset, zone) == (label, offset)


def test_travel_can_give_neighbouring_cycles_one_label_or_skip_one() -> None:
    # westward Sydney -> Los Angeles: two onsets, both "the evening of Nov 10" locally: one label twice
    sydney, _ = _cycle_label("2025-11-10T22:00:00", "Australia/Sydney")
    los_angeles, _ = _cycle_label("2025-11-10T23:00:00", "America/Los_Angeles")
    assert sydney == los_angeles == date(2025, 11, 11)
    # eastward Los Angeles -> Tokyo: the flight eats a night, Nov 5 is never a label
    before, _ = _cycle_label("2025-11-03T22:30:00", "America/Los_Angeles")
    after, _ = _cycle_label("2025-11-05T23:00:00", "Asia/Tokyo")
    assert (before, after) == (date(2025, 11, 4), date(2025, 11, 6))


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
        max_value=datetime(2099, 12, 30),  # noqa: DTZ001 - and adds the zone itself
        timezones=st.sampled_from(
            [ZoneInfo(z) for z in ("America/New_York", "Australia/Sydney", "Asia/Kolkata")]
        ),
    )
)
def test_the_cycle_label_is_the_onset_date_before_noon_and_the_next_date_after(onset: datetime) -> None:
    offset = onset.utcoffset()
    assert offset is not None
    label = cycle_local_date(onset.astimezone(UTC), offset)
    # the wall clock in the record's fixed offset (not the zone's rules a day later)
    wall = onset.astimezone(UTC) + offset
    expected = wall.date() if wall.hour < 12 else wall.date() + timedelta(days=1)
    assert label == expected
