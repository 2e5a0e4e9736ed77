"""Identity before any write: name normalisation, matching, the 6240 name rule, same-person decisions."""

from __future__ import annotations

from collections.abc import Callable, Collection

import pytest

from crm_qb.sync.rules.matching import (
    AMBIGUOUS,
    LINKED,
    NONE,
    Candidate,
    MatchOutcome,
    candidate,
    distinct_display_name,
    has_own_email,
    match,
    match_exact_name,
    normalise_name,
    same_person,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Bill's Windsurf Shop", "bills windsurf shop"),
        ("Bill\u2019s  Windsurf\tShop", "bills windsurf shop"),
        ("BILLS WINDSURF SHOP", "bills windsurf shop"),
        ("Acme, Inc.", "acme inc"),
        ("Smith-Jones & Co", "smith jones co"),
        ("José Núñez", "josé núñez"),
        ("Jose\u0301", "josé"),
        ("\uff26\uff55\uff4c\uff4c Width", "full width"),  # full-width letters
        ("Straße", "strasse"),
        ("O'Neil", "oneil"),
        ("", ""),
        (None, ""),
        ("...", ""),
    ],
)
def test_normalise_name(name: str | None, expected: str) -> None:
    assert normalise_name(name) == expected


def test_accents_are_kept() -> None:
    assert normalise_name("José") != normalise_name("Jose")


CANDIDATES = [
    Candidate(
        "1", email="Surf@Intuit.com", display_name="Bill's Windsurf Shop", company="Bill's Windsurf Shop"
    ),
    Candidate("2", email="ann@acme.io", display_name="Ann Lee", company="Acme"),
    Candidate("3", email="bob@acme.io", display_name="Bob Roe", company="Acme"),
    Candidate("4", email=None, display_name="Cool Cars"),
    Candidate("5", email="old@dylan.me", display_name="Dylan Sollfrank"),
    Candidate("6", email="twin@x.io", display_name="Twin"),
    Candidate("7", email="TWIN@x.io", display_name="Twin Two"),
]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"email": "surf@intuit.com"}, MatchOutcome(LINKED, ("1",), "email")),
        ({"email": "SURF@INTUIT.COM", "display_name": "Someone Else"}, MatchOutcome(LINKED, ("1",), "email")),
        ({"email": "twin@x.io"}, MatchOutcome(AMBIGUOUS, ("6", "7"), "email")),
        ({"display_name": "bills windsurf shop"}, MatchOutcome(LINKED, ("1",), "name")),
        ({"display_name": "Cool  Cars", "email": "new@cars.io"}, MatchOutcome(LINKED, ("4",), "name")),
        ({"display_name": "Ann at Acme", "company": "Acme"}, MatchOutcome(AMBIGUOUS, ("2", "3"), "name")),
        ({"display_name": "Ann Lee"}, MatchOutcome(LINKED, ("2",), "name")),
        # A name hit whose email conflicts goes to review instead of linking.
        (
            {"display_name": "Dylan Sollfrank", "email": "new@dylan.me"},
            MatchOutcome(AMBIGUOUS, ("5",), "name"),
        ),
        ({"display_name": "Nobody", "email": "nobody@x.io"}, MatchOutcome(NONE)),
        ({}, MatchOutcome(NONE)),
    ],
)
def test_match(record: dict[str, str], expected: MatchOutcome) -> None:
    assert match(record, CANDIDATES) == expected


def test_linked_id() -> None:
    assert match({"email": "ann@acme.io"}, CANDIDATES).linked_id == "2"
    assert match({"email": "twin@x.io"}, CANDIDATES).linked_id is None


def test_candidate_from_canonical() -> None:
    made = candidate("9", {"email": "A@B.CO", "display_name": " Ann ", "company": None, "phone": "1"})
    assert made == Candidate("9", email="a@b.co", display_name="Ann", company=None)


TAKEN = {"Acme", "acme (2)", "Zed", "Zed (2)", "Zed (3)"}


@pytest.mark.parametrize(
    ("wanted", "taken", "expected"),
    [
        ("Fresh Name", TAKEN, "Fresh Name"),
        ("Acme", TAKEN, "Acme (3)"),
        ("ACME", TAKEN, "ACME (3)"),
        ("Zed", TAKEN, "Zed (4)"),
        ("Zed", TAKEN.__contains__, "Zed (4)"),
        ("Acme: West", {"Acme West"}, "Acme West (2)"),
        ("  Bill's  Shop ", set(), "Bill's Shop"),
        ("x" * 600, {"x" * 500}, "x" * 496 + " (2)"),
        ("x" * 499 + "😀", set(), "x" * 499),  # the emoji would need units 500 and 501
        ("x" * 499 + "😀", {"x" * 499}, "x" * 496 + " (2)"),
    ],
)
def test_distinct_display_name(
    wanted: str, taken: Callable[[str], bool] | Collection[str], expected: str
) -> None:
    name = distinct_display_name(wanted, taken)
    assert name == expected
    assert ":" not in name and len(name) <= 500


def test_distinct_display_name_rejects_an_empty_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        distinct_display_name(" : ", set())


ANN = {"display_name": "Ann Lee"}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({**ANN, "email": "ann@x.io"}, {**ANN, "email": "ANN@x.io"}, True),
        ({**ANN, "email": "ann@x.io"}, {**ANN, "email": "ann@y.io"}, False),
        ({**ANN, "email": "ann@x.io"}, ANN, True),
        (ANN, {"display_name": "ann  lee"}, True),
        ({**ANN, "company": "Acme"}, {**ANN, "company": "Beta"}, False),
        ({**ANN, "company": "Acme"}, ANN, True),
        ({**ANN, "given_name": "Ann"}, {**ANN, "given_name": "Al"}, False),
        ({"display_name": "Ann Lee"}, {"display_name": "Anne Lee"}, False),
        ({"display_name": "Same", "email": "a@x.io"}, {"display_name": "Other", "email": "a@x.io"}, True),
    ],
)  # fmt: skip
def test_same_person(a: dict[str, str], b: dict[str, str], expected: bool) -> None:
    assert same_person(a, b) is expected
    assert same_person(b, a) is expected


@pytest.mark.parametrize(("email", "parent_email", "own"), [
    (None, "owner@harbor.example", False),
    ("OWNER@harbor.example", "owner@harbor.example", False),
    ("patio@harbor.example", "owner@harbor.example", True),
    ("patio@harbor.example", None, True),
])
def test_a_sub_customer_has_an_email_of_its_own_only_when_it_differs_from_its_parents(
        email: str | None, parent_email: str | None, own: bool) -> None:
    assert has_own_email({"email": email}, parent_email) is own


def test_a_sub_customer_without_its_own_email_matches_by_exact_display_name_only() -> None:
    pool = [Candidate("c1", "owner@harbor.example", "Harbor Cafe", "Harbor Cafe"),
            Candidate("c2", None, "Patio (Harbor Cafe)", None), Candidate("c3", None, "Patio", "Harbor Cafe")]
    job = {"display_name": "patio  (HARBOR cafe)", "email": "owner@harbor.example", "company": "Harbor Cafe"}
    assert match_exact_name(job, pool) == MatchOutcome(LINKED, ("c2",), by="name")
    assert match_exact_name({**job, "display_name": "Deck (Harbor Cafe)"}, pool) == MatchOutcome(NONE)
    assert match(job, pool).ids == ("c1",)  # what the ordinary rule would do: the parent's contact, by email
