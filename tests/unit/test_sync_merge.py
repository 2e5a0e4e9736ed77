"""The three-way field merge (docs/architecture.md §3): one or both sides, policies, window, directions, first link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_qb.address import ADDRESS_PARTS
from crm_qb.sync.rules.canonical import ADDRESS_FIELDS, FIELDS, canonicalise_record
from crm_qb.sync.rules.merge import Conflict, MergeResult, Overwrite, first_link, merge, resolve

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BASE = {"given_name": "Bill", "email": "bill@example.com", "phone": "555 0100"}


def _merge(qbo: dict[str, object], crm: dict[str, object], **options: object) -> MergeResult:
    times = {"qbo_changed_at": T0, "crm_changed_at": T0, **options}
    return merge(BASE, {**BASE, **qbo}, {**BASE, **crm}, **times)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("qbo", "crm", "to_qbo", "to_crm", "base_changes"),
    [
        ({}, {}, {}, {}, {}),
        ({"given_name": "William"}, {}, {}, {"given_name": "William"}, {"given_name": "William"}),
        ({}, {"phone": "555 0199"}, {"phone": "555 0199"}, {}, {"phone": "555 0199"}),
        ({"email": None}, {}, {}, {"email": None}, {"email": None}),
        ({}, {"notes": "new note"}, {"notes": "new note"}, {}, {"notes": "new note"}),
        # The same change on both sides needs no write.
        ({"given_name": "Will"}, {"given_name": "Will"}, {}, {}, {"given_name": "Will"}),
        # Values are compared canonical: QBO's case or spacing is not a change.
        ({"email": "BILL@Example.com", "given_name": " Bill "}, {}, {}, {}, {}),
        # Different fields changed on each side both travel.
        (
            {"given_name": "Will"}, {"phone": "1"},
            {"phone": "1"}, {"given_name": "Will"}, {"given_name": "Will", "phone": "1"},
        ),
    ],
)  # fmt: skip
def test_merge_without_conflict(
    qbo: dict[str, object],
    crm: dict[str, object],
    to_qbo: dict[str, object],
    to_crm: dict[str, object],
    base_changes: dict[str, object],
) -> None:
    result = _merge(qbo, crm)
    assert (dict(result.to_qbo), dict(result.to_crm), result.conflicts) == (to_qbo, to_crm, ())
    expected_base = {**dict.fromkeys(FIELDS), **BASE, **base_changes}
    assert dict(result.new_base) == expected_base


@pytest.mark.parametrize(
    ("policy", "qbo_delta", "crm_delta", "winner", "rule"),
    [
        ("recent_wins", 0, 0, "qbo", "window_qbo_wins"),
        ("recent_wins", 0, 120, "qbo", "window_qbo_wins"),  # exactly the window: QBO wins
        ("recent_wins", 120, 0, "qbo", "window_qbo_wins"),
        ("recent_wins", 0, 121, "crm", "recent_wins"),
        ("recent_wins", 121, 0, "qbo", "recent_wins"),
        ("recent_wins", 0, 3600, "crm", "recent_wins"),
        ("qbo_wins", 0, 3600, "qbo", "qbo_wins"),
        ("qbo_wins", 3600, 0, "qbo", "qbo_wins"),
        ("crm_wins", 3600, 0, "crm", "crm_wins"),
        ("crm_wins", 0, 0, "crm", "crm_wins"),
    ],
)
def test_conflicts_follow_the_policy(
    policy: str, qbo_delta: int, crm_delta: int, winner: str, rule: str
) -> None:
    qbo_at, crm_at = T0 + timedelta(seconds=qbo_delta), T0 + timedelta(seconds=crm_delta)
    result = _merge(
        {"given_name": "Q"}, {"given_name": "C"}, qbo_changed_at=qbo_at, crm_changed_at=crm_at, policy=policy
    )
    assert result.conflicts == (Conflict("given_name", "Q", "C", qbo_at, crm_at, winner, rule),)
    value = "Q" if winner == "qbo" else "C"
    assert result.new_base["given_name"] == value
    assert dict(result.to_crm if winner == "qbo" else result.to_qbo) == {"given_name": value}
    assert dict(result.to_qbo if winner == "qbo" else result.to_crm) == {}


def test_window_is_configurable() -> None:
    later = T0 + timedelta(seconds=30)
    narrow = _merge({"phone": "1"}, {"phone": "2"}, crm_changed_at=later, window=timedelta(seconds=10))
    assert (narrow.conflicts[0].winner, narrow.conflicts[0].rule) == ("crm", "recent_wins")


def test_change_times_in_other_offsets_are_compared_in_utc() -> None:
    crm_at = datetime(2025, 3, 1, 5, 3, tzinfo=timezone(timedelta(hours=-8)))  # 13:03 UTC, an hour after T0
    assert resolve("recent_wins", T0, crm_at) == ("crm", "recent_wins")


@pytest.mark.parametrize(
    ("direction", "qbo", "crm", "to_qbo", "to_crm", "base_phone"),
    [
        ("off", {"phone": "Q"}, {"phone": "C"}, {}, {}, "555 0100"),
        ("off", {"phone": "Q"}, {}, {}, {}, "555 0100"),
        ("qbo_to_crm", {"phone": "Q"}, {}, {}, {"phone": "Q"}, "Q"),
        ("qbo_to_crm", {}, {"phone": "C"}, {}, {}, "555 0100"),  # the CRM edit stays, not propagated
        ("qbo_to_crm", {"phone": "Q"}, {"phone": "C"}, {}, {"phone": "Q"}, "Q"),  # source wins, no conflict
        ("crm_to_qbo", {}, {"phone": "C"}, {"phone": "C"}, {}, "C"),
        ("crm_to_qbo", {"phone": "Q"}, {}, {}, {}, "555 0100"),
        ("crm_to_qbo", {"phone": "Q"}, {"phone": "C"}, {"phone": "C"}, {}, "C"),
        ("crm_to_qbo", {"phone": "X"}, {"phone": "X"}, {}, {}, "X"),
    ],
)
def test_directions(
    direction: str,
    qbo: dict[str, object],
    crm: dict[str, object],
    to_qbo: dict[str, object],
    to_crm: dict[str, object],
    base_phone: str,
) -> None:
    result = _merge(qbo, crm, directions={"phone": direction})
    assert (dict(result.to_qbo), dict(result.to_crm), result.conflicts) == (to_qbo, to_crm, ())
    assert result.new_base["phone"] == base_phone


def test_echo_of_our_own_write_is_a_no_op() -> None:
    first = _merge({}, {"phone": "555 0199"})
    echo = merge(first.new_base, {**BASE, **first.to_qbo}, {**BASE, "phone": "555 0199"}, qbo_changed_at=T0,
                 crm_changed_at=T0)  # fmt: skip
    assert (dict(echo.to_qbo), dict(echo.to_crm), echo.conflicts) == ({}, {}, ())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"policy": "latest"}, "unknown conflict policy 'latest'"),
        ({"window": timedelta(seconds=-1)}, "must not be negative"),
        ({"qbo_changed_at": datetime(2025, 3, 1, 12, 0)}, "qbo_changed_at must be timezone-aware"),
        ({"directions": {"phone": "up"}}, "'phone' has direction 'up'"),
    ],
)
def test_merge_rejects_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _merge({}, {}, **options)


def test_merge_result_is_read_only() -> None:
    result = _merge({"given_name": "Will"}, {})
    with pytest.raises(TypeError):
        result.to_crm["given_name"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("qbo", "crm", "to_qbo", "to_crm", "overwritten"),
    [
        ({"given_name": "Bill"}, {"given_name": "Bill"}, {}, {}, ()),
        ({"given_name": "Bill"}, {}, {}, {"given_name": "Bill"}, ()),
        ({}, {"phone": "555"}, {"phone": "555"}, {}, ()),
        ({"email": "Bill@X.com"}, {"email": "bill@x.com"}, {}, {}, ()),
        ({"phone": "1"}, {"phone": "2"}, {}, {"phone": "1"}, (Overwrite("phone", "crm", "2", "1"),)),
        (
            {"given_name": "Bill", "notes": "from qbo"},
            {"family_name": "Lee", "notes": "from crm"},
            {"family_name": "Lee"},
            {"given_name": "Bill", "notes": "from qbo"},
            (Overwrite("notes", "crm", "from crm", "from qbo"),),
        ),
    ],
)
def test_first_link(
    qbo: dict[str, object],
    crm: dict[str, object],
    to_qbo: dict[str, object],
    to_crm: dict[str, object],
    overwritten: tuple[Overwrite, ...],
) -> None:
    result = first_link(qbo, crm)
    assert (dict(result.to_qbo), dict(result.to_crm), result.overwritten, result.conflicts) == (
        to_qbo, to_crm, overwritten, ()
    )  # fmt: skip
    filled = {**{k: v for k, v in crm.items() if v}, **{k: v for k, v in qbo.items() if v}}
    assert {k: v for k, v in result.new_base.items() if v} == {
        k: (str(v).casefold() if k == "email" else v) for k, v in filled.items()
    }


OVER_QBO, OVER_CRM = Overwrite("phone", "qbo", "1", "2"), Overwrite("phone", "crm", "2", "1")


@pytest.mark.parametrize(
    ("direction", "qbo", "crm", "to_qbo", "to_crm", "overwritten", "base"),
    [
        ("off", {"phone": "1"}, {"phone": "2"}, {}, {}, (), None),
        ("off", {"phone": "1"}, {}, {}, {}, (), None),
        ("crm_to_qbo", {"phone": "1"}, {"phone": "2"}, {"phone": "2"}, {}, (OVER_QBO,), "2"),
        ("crm_to_qbo", {"phone": "1"}, {}, {}, {}, (), None),
        ("crm_to_qbo", {}, {"phone": "2"}, {"phone": "2"}, {}, (), "2"),
        ("qbo_to_crm", {}, {"phone": "2"}, {}, {}, (), None),
        ("qbo_to_crm", {"phone": "1"}, {"phone": "2"}, {}, {"phone": "1"}, (OVER_CRM,), "1"),
    ],
)  # fmt: skip
def test_first_link_directions(
    direction: str,
    qbo: dict[str, object],
    crm: dict[str, object],
    to_qbo: dict[str, object],
    to_crm: dict[str, object],
    overwritten: tuple[Overwrite, ...],
    base: str | None,
) -> None:
    result = first_link(qbo, crm, directions={"phone": direction})
    assert (dict(result.to_qbo), dict(result.to_crm), result.overwritten) == (to_qbo, to_crm, overwritten)
    assert result.new_base["phone"] == base


@pytest.mark.parametrize("direction", ["both", "qbo_to_crm", "crm_to_qbo", "off"])
def test_first_link_then_merge_is_stable(direction: str) -> None:
    qbo, crm = {"phone": "1", "notes": "q"}, {"phone": "2", "email": "c@x.io"}
    link = first_link(qbo, crm, directions={"phone": direction})
    qbo_after, crm_after = {**qbo, **link.to_qbo}, {**crm, **link.to_crm}
    again = merge(link.new_base, qbo_after, crm_after, qbo_changed_at=T0, crm_changed_at=T0,
                  directions={"phone": direction})  # fmt: skip
    assert (dict(again.to_qbo), dict(again.to_crm), again.conflicts) == ({}, {}, ())


@pytest.mark.parametrize(
    ("direction", "crm_name", "to_crm", "base"),
    [
        ("both", None, {"display_name": "Oscar Reyes"}, "Oscar Reyes"),
        ("both", "Reyes Consulting", {"display_name": "Oscar Reyes"}, "Oscar Reyes"),
        ("qbo_to_crm", "Reyes Consulting", {"display_name": "Oscar Reyes"}, "Oscar Reyes"),
        ("crm_to_qbo", "Reyes Consulting", {}, "Reyes Consulting"),
        ("crm_to_qbo", None, {}, "Oscar Reyes"),
    ],
)  # fmt: skip
def test_first_link_never_renames_the_qbo_customer(direction: str, crm_name: str | None,
                                                   to_crm: dict[str, object], base: str) -> None:
    qbo = {"display_name": "Oscar Reyes", "company": "Reyes LLC"}
    crm = {"given_name": "Oscar", "family_name": "Reyes", "display_name": crm_name}
    result = first_link(qbo, crm, directions={"display_name": direction})
    assert "display_name" not in result.to_qbo
    assert {k: v for k, v in result.to_crm.items() if k == "display_name"} == to_crm
    assert result.new_base["display_name"] == base


_raw_text = st.none() | st.text(alphabet=st.sampled_from(["a", "B", " ", "\t", ":", "é", "e", "\u0301", "\x00", "\n"]),
                                max_size=6)  # fmt: skip
_raw_address = st.none() | st.fixed_dictionaries({}, optional={part: _raw_text for part in ADDRESS_PARTS})
_raw_record = st.fixed_dictionaries(
    {}, optional={name: (_raw_address if name in ADDRESS_FIELDS else _raw_text) for name in FIELDS})


@given(_raw_record, _raw_record, st.sampled_from(["both", "qbo_to_crm", "crm_to_qbo", "off"]),
       st.sampled_from(FIELDS))  # fmt: skip
def test_first_link_of_folded_records_is_the_same(qbo: dict[str, object], crm: dict[str, object], direction: str,
                                                  field: str) -> None:
    """``folded=True`` (records canonical already, as the backfill's are) merges as folding them again would."""
    directions = {field: direction}
    folded = first_link(canonicalise_record(qbo), canonicalise_record(crm), directions=directions, folded=True)
    assert folded == first_link(qbo, crm, directions=directions)
