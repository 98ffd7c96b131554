"""Money in CNY as Decimal cents: parsing, formatting and exact splitting by shares."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


class MoneyError(ValueError):
    """Raised when an amount is not a non-negative sum of whole cents."""


def money(value: str | Decimal | int) -> Decimal:
    """An amount as a Decimal with exactly two places; refuses fractions of a cent and floats."""
    if isinstance(value, float):
        raise MoneyError("money is never a float")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise MoneyError(f"{value!r} is not an amount") from None
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise MoneyError(f"{value!r} is not a whole number of cents")
    return amount.quantize(CENT)


def text(amount: Decimal) -> str:
    """The wire and registry form: a plain decimal string with two places ("-66.67")."""
    return f"{amount.quantize(CENT):.2f}"


def share(value: str | Decimal) -> Fraction:
    """A responsibility share as an exact fraction (shares are decimals on the wire)."""
    try:
        exact = Fraction(Decimal(value))
    except (InvalidOperation, ValueError):
        raise MoneyError(f"{value!r} is not a share") from None
    if exact <= 0:
        raise MoneyError(f"share {value!r} is not positive")
    return exact


def allocate(total: Decimal, parts: Sequence[tuple[str, Fraction]]) -> list[Decimal]:
    """Split `total` by weights into cents that add up to it exactly.

    Largest remainder: every part gets the whole cents of its exact portion, and the cents
    left over go one each to the parts with the largest remainders; equal remainders go to
    the smaller key, so the result never depends on the order the parts were listed in.
    """
    if not parts:
        return []
    cents = int(money(total) * 100)
    if cents < 0:
        raise MoneyError("only a non-negative amount is split")
    weight = sum((w for _, w in parts), Fraction(0))
    if weight <= 0:
        raise MoneyError("shares must add up to more than nothing")
    exact = [cents * w / weight for _, w in parts]
    whole = [int(e) for e in exact]  # exact >= 0, so int() is the floor
    left = cents - sum(whole)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(exact[i] - whole[i]), parts[i][0], i))
    for i in by_remainder[:left]:
        whole[i] += 1
    return [(Decimal(c) / 100).quantize(CENT) for c in whole]
