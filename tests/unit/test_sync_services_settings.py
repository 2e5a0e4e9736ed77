"""Per-connection sync settings: defaults, validation messages, assignments, field directions."""

from __future__ import annotations

import pytest

from crm_qb.sync.settings import SyncSettingsError, apply_assignments, parse_sync_settings, sync_settings_of


def test_defaults() -> None:
    settings = sync_settings_of({})
    assert (settings.enabled, settings.direction, settings.conflict_policy, settings.conflict_window_seconds,
            settings.on_crm_delete, settings.cdc_poll_seconds) == (True, "both", "recent_wins", 120, "unlink", 300)
    assert set(settings.field_directions().values()) == {"both"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"direction": "sideways"}, "sync.direction: invalid value 'sideways'"),
    ({"conflict_policy": "newest"}, "sync.conflict_policy: invalid value 'newest'"),
    ({"conflict_window_seconds": -1}, "sync.conflict_window_seconds: invalid value -1"),
    ({"on_crm_delete": "delete"}, "sync.on_crm_delete: invalid value 'delete'"),
    ({"colour": "red"}, "sync.colour: invalid value 'red': Unknown field."),
    ({"fields": {"emial": "both"}}, "sync.fields.emial: invalid key 'emial'"),
    ({"fields": {"email": "up"}}, "sync.fields.email: invalid value 'up'"),
])
def test_a_bad_value_is_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(SyncSettingsError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        parse_sync_settings(raw)


def test_assignments_are_parsed_validated_and_keep_other_settings() -> None:
    updated = apply_assignments({"other": 1}, ["sync.direction=qbo_to_crm", "sync.conflict_window_seconds=30",
                                               "sync.fields.notes=off", "sync.enabled=false"])
    assert updated["other"] == 1
    sync = updated["sync"]
    assert (sync["direction"], sync["conflict_window_seconds"], sync["fields"], sync["enabled"]) == (
        "qbo_to_crm", 30, {"notes": "off"}, False)


@pytest.mark.parametrize("assignment", ["direction=both", "sync.direction", "sync.direction=up"])
def test_a_bad_assignment_is_refused(assignment: str) -> None:
    with pytest.raises(SyncSettingsError):
        apply_assignments({}, [assignment])


def test_the_connection_direction_narrows_field_directions() -> None:
    settings = parse_sync_settings({"direction": "qbo_to_crm", "fields": {"email": "crm_to_qbo", "notes": "off"}})
    directions = settings.field_directions()
    assert (directions["given_name"], directions["email"], directions["notes"]) == ("qbo_to_crm", "off", "off")
    assert settings.to_crm and not settings.to_qbo
