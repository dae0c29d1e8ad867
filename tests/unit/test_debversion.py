"""deb-version(7) ordering on hand-computed cases (the man page's own examples
and dpkg's lib/dpkg/t/t-version.c); the system layer checks 10,000+ real pairs
against `dpkg --compare-versions`."""

import functools

import pytest

from pyimgtools import debversion
from pyimgtools.debversion import compare, parse, verrevcmp

# (a, b, expected sign of compare(a, b))
CASES = [
    ("1.0", "1.0", 0),
    ("0:1.0", "1.0", 0),            # epoch 0 is the default
    ("1.0", "1.0-0", 0),            # an absent revision compares as "0"
    ("1.001", "1.1", 0),            # digit runs compare numerically
    ("1.0", "1.1", -1),
    ("1.2.3", "1.2.10", -1),
    ("1:0.1", "2.0", 1),            # the epoch wins
    ("2:1.0", "1:9.9", 1),
    ("1.0~rc1", "1.0", -1),         # ~ sorts before the end of the string
    ("1.0~~", "1.0~~a", -1),        # deb-version(7): ~~ < ~~a < ~ < "" < a
    ("1.0~~a", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0+", -1),           # letters sort before non-letters
    ("1.0+", "1.0.", -1),           # then by ASCII
    ("1.0+dfsg", "1.0", 1),
    ("1.0-1~bpo12+1", "1.0-1", -1),
    ("1.0-1", "1.0-2", -1),
    ("1.0-1", "1.0.1", -1),
    ("1.0-1", "1.0-1+b1", -1),
    ("5.2.15-2+b2", "5.2.15-2+b10", -1),
    ("1.2-3-4", "1.2-3-5", -1),     # the revision is after the last hyphen
    ("1.2-3-4", "1.2-4-1", -1),
    ("9.2p1-2+deb12u6", "9.2p1-2+deb12u10", -1),
    ("2.42.10+dfsg-1+deb12u2", "2.42.10+dfsg-1+deb12u4", -1),
    ("20230311+deb12u1", "20250419~deb12u2", -1),
    ("3.0.11-1~deb12u2", "3.0.11-1", -1),
    ("2.1.12-stable-8", "2.1.12-stable-8+deb12u1", -1),
    ("a", "b", -1),                 # no leading digit: still compared
    ("0", "00", 0),
    ("10", "9", 1),
]


@pytest.mark.parametrize("a, b, expected", CASES)
def test_compare(a, b, expected):
    assert compare(a, b) == expected
    assert compare(b, a) == -expected


def test_parse_splits_at_first_colon_and_last_hyphen():
    assert parse("1:2.3-4") == (1, "2.3", "4")
    assert parse("2.3") == (0, "2.3", "")
    assert parse("1:2.3-4-5") == (1, "2.3-4", "5")
    assert parse("1:2:3-4") == (1, "2:3", "4")


@pytest.mark.parametrize("bad", ["", "   ", "a:1.0", "-1:1.0", ":1.0"])
def test_parse_rejects_bad_epochs_and_empty(bad):
    with pytest.raises(ValueError):
        parse(bad)


def test_verrevcmp_tilde_before_end():
    assert verrevcmp("~", "") < 0
    assert verrevcmp("", "~") > 0
    assert verrevcmp("~~", "~") < 0


def test_sort_key_orders_like_the_man_page():
    shuffled = ["1.0a", "1.0", "1.0~", "1.0~~a", "1.0~~"]
    assert sorted(shuffled, key=functools.cmp_to_key(debversion.compare)) == ["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"]
