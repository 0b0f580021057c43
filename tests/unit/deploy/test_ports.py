"""The sysctl port-list arithmetic behind reserving our fixed service ports."""

from __future__ import annotations

import pytest

from deploy.ports import merge_port_list, parse_port_list


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", set()),
        ("\n", set()),
        ("8080", {8080}),
        ("39092-39094,54329\n", {39092, 39093, 39094, 54329}),
        (" 1 , 3-4 ", {1, 3, 4}),
    ],
)
def test_parse_port_list(text: str, expected: set[int]) -> None:
    assert parse_port_list(text) == expected


def test_merge_adds_missing_ports_and_keeps_the_others() -> None:
    merged = merge_port_list("8080,39092-39093\n", [54329, 39093])
    assert merged is not None
    assert parse_port_list(merged) == {8080, 39092, 39093, 54329}


def test_merge_reports_nothing_to_do_when_every_port_is_there() -> None:
    assert merge_port_list("39092-39093,54329", [39093, 54329]) is None


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_port_list("abc")
