"""Settings are parsed once per environment (a warm Lambda invocation does not validate them again),
yet a changed variable is seen at once (the local runner swaps environments between functions)."""

from __future__ import annotations

import pytest

from leadscore.config import ConfigurationError, Settings


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("LEDGER_TABLE", "ledger-once")
    monkeypatch.setenv("PROFILES_TABLE", "profiles-once")
    monkeypatch.setenv("MAX_BODY_BYTES", "4096")
    return monkeypatch


def test_an_unchanged_environment_gives_the_settings_parsed_before(environment: pytest.MonkeyPatch) -> None:
    # Given settings read once
    first = Settings.from_env()
    # When they are read again with the same environment
    again = Settings.from_env()
    # Then it is the same parsed instance, not a second validation
    assert again is first
    assert first.max_body_bytes == 4096


def test_a_changed_variable_is_read_at_once(environment: pytest.MonkeyPatch) -> None:
    # Given settings read once
    assert Settings.from_env().max_body_bytes == 4096
    # When a variable changes (another function's environment in the local runner)
    environment.setenv("MAX_BODY_BYTES", "8192")
    # Then the next read sees it
    assert Settings.from_env().max_body_bytes == 8192


def test_an_invalid_environment_is_refused_every_time_until_fixed(environment: pytest.MonkeyPatch) -> None:
    # Given a broken variable: it is refused (and the refusal is not remembered as settings)
    environment.setenv("MAX_BODY_BYTES", "12")
    for _ in range(2):
        with pytest.raises(ConfigurationError, match=r"MAX_BODY_BYTES|max_body_bytes"):
            Settings.from_env()
    # When it is fixed, Then it is read
    environment.setenv("MAX_BODY_BYTES", "2048")
    assert Settings.from_env().max_body_bytes == 2048


def test_an_explicit_mapping_is_parsed_as_given() -> None:
    settings = Settings.from_env({"LEDGER_TABLE": "l", "PROFILES_TABLE": "p", "UNRELATED": "x"})
    assert (settings.ledger_table, settings.profiles_table) == ("l", "p")
