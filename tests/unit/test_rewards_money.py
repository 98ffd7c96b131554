"""Cents: a penalty split by shares adds up exactly, the same way whatever order the shares came in."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.rewards.money import MoneyError, allocate, money, share, text

D = Decimal


def test_thirds_of_two_hundred_add_up_to_the_cent() -> None:
    parts = [("SZ02", share("0.3333333333")), ("SH01", share("0.3333333333")), ("HZ03", share("0.3333333334"))]

    amounts = allocate(D("200.00"), parts)

    # HZ03's share is the largest; of the equal two, the smaller branch id gets the last cent.
    assert amounts == [D("66.66"), D("66.67"), D("66.67")]
    assert sum(amounts) == D("200.00")


def test_exact_thirds_give_the_spare_cents_by_branch_id() -> None:
    third = Fraction(1, 3)

    assert allocate(D("200.00"), [("C", third), ("A", third), ("B", third)]) == [D("66.66"), D("66.67"), D("66.67")]
    assert allocate(D("0.01"), [("C", third), ("A", third), ("B", third)]) == [D("0.00"), D("0.01"), D("0.00")]


def test_a_single_branch_bears_the_whole_penalty() -> None:
    assert allocate(D("200.00"), [("SZ02", share("1"))]) == [D("200.00")]


def test_no_branches_no_parts() -> None:
    assert allocate(D("200.00"), []) == []


shares = st.lists(
    st.tuples(st.sampled_from(["GZ01", "SZ02", "SH01", "HZ03", "UR01", "BJ01", "CD01"]),
              st.integers(min_value=1, max_value=10**10)),
    min_size=1, max_size=7, unique_by=lambda part: part[0])
totals = st.integers(min_value=0, max_value=10**9).map(lambda cents: D(cents) / 100)


@given(totals, shares)
def test_parts_always_add_up_and_stay_within_a_cent_of_exact(total: Decimal, raw: list[tuple[str, int]]) -> None:
    parts = [(branch, Fraction(weight, 10**10)) for branch, weight in raw]
    weight = sum(w for _, w in parts)

    amounts = allocate(total, parts)

    assert sum(amounts) == total
    for (_, w), amount in zip(parts, amounts, strict=True):
        assert amount == amount.quantize(D("0.01"))
        assert abs(Fraction(amount) - Fraction(total) * w / weight) < Fraction(1, 100)


@given(totals, shares, st.randoms())
def test_the_listing_order_never_changes_who_pays_what(total: Decimal, raw: list[tuple[str, int]],
                                                       rnd: object) -> None:
    parts = [(branch, Fraction(weight)) for branch, weight in raw]
    shuffled = list(parts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]

    first = dict(zip((b for b, _ in parts), allocate(total, parts), strict=True))
    second = dict(zip((b for b, _ in shuffled), allocate(total, shuffled), strict=True))

    assert first == second


@pytest.mark.parametrize("bad", [0.1, "12.345", "abc", "NaN", "Infinity"])
def test_money_refuses_floats_and_fractions_of_a_cent(bad: object) -> None:
    with pytest.raises(MoneyError):
        money(bad)  # type: ignore[arg-type]


def test_money_is_written_with_two_places() -> None:
    assert text(money("200")) == "200.00"
    assert text(D("-66.67")) == "-66.67"


@pytest.mark.parametrize("bad", ["0", "-0.5", "x"])
def test_a_share_is_a_positive_number(bad: str) -> None:
    with pytest.raises(MoneyError):
        share(bad)
