"""Per-connection time settings (crm_qb/sync/time/settings.py): defaults, validation naming the key."""

from __future__ import annotations

import pytest

from crm_qb.sync.time.settings import (
    DEFAULT_ACTIVITY_URL,
    TimeSettings,
    TimeSettingsError,
    parse_time_settings,
    time_settings_of,
    with_time_settings,
)


def test_defaults_and_round_trip() -> None:
    assert time_settings_of({}) == TimeSettings(True, None, DEFAULT_ACTIVITY_URL)
    stored = with_time_settings({"sync": {"enabled": True}}, TimeSettings(False, "7", "{crm}/a/{activity_id}"))
    assert stored["sync"] == {"enabled": True}
    assert time_settings_of(stored) == TimeSettings(False, "7", "{crm}/a/{activity_id}")
    assert parse_time_settings({"default_item": 12}).default_item == "12"


@pytest.mark.parametrize(("raw", "message"), [
    ({"enabled": "yes"}, "time.enabled: invalid value 'yes'"),
    ({"default_item": "Design"}, "time.default_item: invalid value 'Design'"),
    ({"activity_url": "https://crm/x"}, "time.activity_url: invalid value 'https://crm/x': must contain"),
    ({"activity_url": "{crm}/{user}/{activity_id}"}, "only {crm}, {contact_id} and {activity_id}"),
    ({"colour": "red"}, "time.colour: unknown setting"),
    ("on", "time settings must be an object"),
])
def test_bad_values_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(TimeSettingsError, match=message.replace("{", "\\{").replace("}", "\\}")):
        parse_time_settings(raw)  # type: ignore[arg-type]
