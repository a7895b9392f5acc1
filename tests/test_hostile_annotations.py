"""Hostile ipvsctl.io/* annotation values: each is refused with an AnnotationError, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.annotations import (
    NETMASK_ANNOTATION,
    SCHEDULER_ANNOTATION,
    AnnotationError,
    parse_netmasks,
    parse_scheduler,
)
from ipvsctl.model import DEFAULT_SCHEDULERS

DEFAULTS = {4: 32, 6: 128}


def netmasks(value: str, *, families: tuple[int, ...] = (4,)) -> dict[int, int]:
    """The prefix lengths the netmask annotation ``value`` gives a Service of ``families``."""
    return parse_netmasks({NETMASK_ANNOTATION: value}, families=families, defaults=DEFAULTS)


@pytest.mark.parametrize(
    ("value", "families"),
    [
        ("²", (4,)),
        ("/²", (4,)),
        ("2²", (4,)),
        ("\u0662\u0664", (4,)),
        ("ipv4=²", (4, 6)),
        ("ipv6=\uff16\uff14", (4, 6)),
        ("9" * 5000, (4,)),
        ("ipv6=" + "9" * 5000, (6,)),
        ("2_4", (4,)),
    ],
    ids=[
        "superscript-two",
        "slash-superscript",
        "digit-and-superscript",
        "arabic-indic",
        "family-superscript",
        "family-fullwidth",
        "five-thousand-digits",
        "family-five-thousand-digits",
        "underscore",
    ],
)
def test_non_ascii_or_huge_prefix_is_an_annotation_error(value: str, families: tuple[int, ...]) -> None:
    """A prefix length of Unicode digits, underscores or thousands of digits is refused as not a prefix length."""
    with pytest.raises(AnnotationError, match="is not a prefix length"):
        netmasks(value, families=families)


def test_ascii_prefix_still_reads() -> None:
    """Plain ASCII prefix lengths keep working, with or without a slash and a family."""
    assert netmasks("/24") == {4: 24}
    assert netmasks("ipv4=24,ipv6=064", families=(4, 6)) == {4: 24, 6: 64}


@given(st.text(max_size=40))
def test_any_netmask_value_gives_masks_or_an_annotation_error(value: str) -> None:
    """Whatever the netmask annotation holds, the result is prefix lengths in range or an AnnotationError."""
    for families in ((4,), (6,), (4, 6)):
        try:
            result = netmasks(value, families=families)
        except AnnotationError:
            continue
        assert all(1 <= prefix <= (32 if family == 4 else 128) for family, prefix in result.items())


@given(st.text(max_size=40))
def test_any_scheduler_value_gives_a_known_scheduler_or_an_annotation_error(value: str) -> None:
    """Whatever the scheduler annotation holds, the result is a known scheduler or an AnnotationError."""
    try:
        name = parse_scheduler({SCHEDULER_ANNOTATION: value}, default="rr", known=DEFAULT_SCHEDULERS)
    except AnnotationError:
        return
    assert name in DEFAULT_SCHEDULERS
