"""AMQP topic matching as `casework replay publish --binding` applies it."""

import pytest

from shared.topology import topic_matches


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("complaint.#", "complaint.received.GZ01", True),
    ("complaint.#", "complaint", True),
    ("#", "a.b", True),
    ("*.received.*", "complaint.received.GZ01", True),
    ("complaint.*", "complaint.received.GZ01", False),
    ("hq.warehousing", "hq.warehousing", True),
    ("hq.warehousing", "hq.claims", False),
    ("#.GZ01", "complaint.received.GZ01", True),
    ("#.GZ01", "complaint.received.GZ011", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "ab", False),
    ("*", "", True),
    ("*.*", "a", False),
])
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected
