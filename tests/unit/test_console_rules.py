"""The console's pure pieces: failure reasons in words, settings diffs, readable audit changes, the chart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_qb.sync.rules.failure_words import UNKNOWN, explain
from crm_qb.sync.settings_changes import changes_between, flatten
from crm_qb.web.readmodels.audit import InvalidAuditQuery, changes_of, parse_audit_query, rule_words
from crm_qb.web.readmodels.health import Hour, chart_bars

QBO_6240 = ("DuplicateNameError: A customer, vendor or employee already uses this name. QuickBooks said: The name "
            "supplied already exists. (code 6240, field DisplayName, HTTP 400, intuit_tid 1-abc-2)")


@pytest.mark.parametrize(("reason", "words", "code", "tid"), [
    (QBO_6240, "QuickBooks refused the name", "6240", "1-abc-2"),
    ("CrmValidationError: CRM PATCH /contacts/c1 answered 400 invalid_field: display_name: longer than 255",
     "The CRM refused the data sent", None, None),
    ("ServerError: QuickBooks is unavailable (HTTP 503)", "QuickBooks was unavailable", "503", None),
    ("KeyError: 'Id'", UNKNOWN, None, None),
    ("", "No reason was recorded.", None, None),
])
def test_a_failure_is_explained_in_words_with_its_code_and_tid(reason: str, words: str, code: str | None,
                                                               tid: str | None) -> None:
    told = explain(reason)
    assert told.words.startswith(words) and told.code == code and told.intuit_tid == tid and told.error == reason


def test_an_audit_entrys_intuit_tid_wins_over_the_text() -> None:
    assert explain(QBO_6240, "given").intuit_tid == "given"


def test_settings_are_compared_key_by_key() -> None:
    assert flatten({"sync": {"fields": {"notes": "off"}, "mode": "manual"}, "followups": {"rule_days": [1, 2]}}) \
        == {"sync.fields.notes": "off", "sync.mode": "manual", "followups.rule_days": [1, 2]}
    before = {"sync": {"mode": "realtime", "fields": {"notes": "both"}}}
    after = {"sync": {"mode": "manual", "fields": {"notes": "both", "email": "off"}}}
    assert changes_between(before, after) == {"sync.fields.email": {"before": None, "after": "off"},
                                              "sync.mode": {"before": "realtime", "after": "manual"}}
    assert changes_between(after, after) == {}


def test_audit_changes_read_before_and_after() -> None:
    diff = {"to_crm": {"notes": "b"}, "changes": {"notes": {"before": "a", "after": "b"}}}
    [change] = changes_of(diff)
    assert (change.field, change.before, change.after, change.to) == ("Notes", "a", "b", "CRM")
    old = changes_of({"to_qbo": {"email": "x@example.com"}})  # entries written before "changes" existed
    assert [(c.field, c.before, c.after, c.to) for c in old] == [("Email", None, "x@example.com", "QuickBooks")]
    flipped = changes_of({"field": "phone", "value": "2", "was": "1"})
    assert [(c.field, c.before, c.after) for c in flipped] == [("Phone", "1", "2")]


def test_conflict_rules_in_plain_words() -> None:
    assert rule_words("window_qbo_wins", 120) == "Both sides changed it within 120 s of each other, so QuickBooks won."
    assert "more recent" in rule_words("recent_wins", 120) and "CRM win" in rule_words("crm_wins", 120)


@pytest.mark.parametrize(("args", "field"), [({"page": "0"}, "page"), ({"since": "yesterday"}, "since"),
                                             ({"until": "2026-13-01"}, "until")])
def test_a_bad_audit_filter_names_itself(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidAuditQuery) as raised:
        parse_audit_query(args)
    assert raised.value.field == field


def test_audit_filters_parse_and_round_trip() -> None:
    query = parse_audit_query({"record": " Grace ", "kind": "link", "since": "2026-12-01", "include_unchanged": "1"})
    assert (query.record, query.kind, str(query.since), query.include_unchanged) == ("Grace", "link", "2026-12-01",
                                                                                     True)
    assert parse_audit_query(query.args()) == query


def test_the_chart_scales_to_the_busiest_hour() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    chart = chart_bars([Hour(start, 10, 0), Hour(start, 5, 5), Hour(start, 0, 0)], width=300, height=100)
    assert chart["peak"] == 10
    assert [(b["eh"], b["fh"]) for b in chart["bars"]] == [(100.0, 0.0), (50.0, 50.0), (0.0, 0.0)]
    assert [b["x"] for b in chart["bars"]] == [0.0, 100.0, 200.0]
    assert chart_bars([Hour(start, 0, 0)])["peak"] == 1  # an empty chart never divides by zero


@pytest.mark.parametrize(("entity", "kind", "source", "operation"), [
    ("Contact", "first", "crm", "first sync 3"),
    ("Invoice", "history", "qbo", "history import 3"),
])
def test_a_failed_sync_record_keeps_the_other_sides_error_code_and_tid(entity: str, kind: str, source: str,
                                                                      operation: str) -> None:
    from crm_qb.models import SyncRunRecord
    from crm_qb.sync.failures import SYNC_RECORD, sync_record_failure

    tried = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    row = SyncRunRecord(id=7, run_id=3, entity=entity, object_id="42", action="failed", attempts=2,
                        reason="QuickBooks refused the values of this record.", error="ValidationFault: bad",
                        error_code="2050", intuit_tid="1-abc-2", updated_at=tried)
    failure = sync_record_failure(row, kind)
    assert (failure.kind, failure.id, failure.run_id, failure.source, failure.operation) == (
        SYNC_RECORD, 7, 3, source, operation)
    assert (failure.code, failure.intuit_tid, failure.attempts, failure.last_try) == ("2050", "1-abc-2", 2, tried)
    assert failure.as_json()["last_try"] == tried.isoformat() and failure.words.startswith("QuickBooks refused")
