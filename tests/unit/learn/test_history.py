"""Event histories: reading JSON Lines, labelling leads, decision moments, replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadscore.cli import CommandError
from leadscore.domain import EventType
from leadscore.learn.history import (
    EXCLUDED_NO_ACTIVITY,
    EXCLUDED_PENDING,
    EXCLUDED_RECENT,
    HistoryEvent,
    LabelOptions,
    before,
    label_leads,
    load_events,
    replay,
)
from leadscore.model_store import load_model
from leadscore.scoring import engine

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _line(email: str, event: str, day: float, **extra: Any) -> str:
    at = (T0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")
    return json.dumps({"email": email, "event": event, "occurred_at": at, **extra})


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_events_are_read_grouped_by_lead_and_sorted_by_time(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            _line("Ann@Acme.com", "email_opened", 3),
            "",
            _line("ann@acme.com", "form_submitted", 1, attributes={"job_title": "CTO"}),
            _line("bob@acme.com", "page_viewed", 2, url="https://acme.com/pricing"),
        ],
    )
    history = load_events(path)
    assert list(history.leads) == ["ann@acme.com", "bob@acme.com"]
    assert [e.event for e in history.leads["ann@acme.com"]] == [
        EventType.FORM_SUBMITTED,
        EventType.EMAIL_OPENED,
    ]
    assert history.leads["ann@acme.com"][0].attributes == {"job_title": "CTO"}
    assert history.lines == 3
    assert history.end == T0 + timedelta(days=3)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "line 2: not a JSON object"),
        (_line("a@b.com", "teleported", 1), "line 2: event:"),
        (_line("not-an-email", "email_opened", 1), "line 2: email:"),
        (_line("a@b.com", "email_opened", 1, score=99), "line 2: score: Extra inputs are not permitted"),
        (json.dumps({"email": "a@b.com", "event": "email_opened"}), "line 2: occurred_at: Field required"),
    ],
)
def test_a_bad_line_is_refused_with_its_line_number(tmp_path: Path, line: str, expected: str) -> None:
    path = _write(tmp_path, [_line("ok@b.com", "email_opened", 0), line])
    with pytest.raises(CommandError) as caught:
        load_events(path)
    assert expected in caught.value.message
    assert "1 line(s) are not valid" in caught.value.message


def test_an_empty_or_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="holds no events"):
        load_events(_write(tmp_path, ["", "  "]))
    with pytest.raises(CommandError, match="no such file"):
        load_events(tmp_path / "absent.jsonl")


def test_an_event_serialises_to_the_documented_shape() -> None:
    event = HistoryEvent.model_validate(
        {"email": "A@B.com", "event": "page_viewed", "occurred_at": "2026-03-02T10:00:00+00:00",
         "url": "https://b.com/x", "attributes": {"Job Title": "CTO", "company_size": "51-200"}}
    )  # fmt: skip
    assert json.loads(event.to_line()) == {
        "email": "a@b.com",
        "event": "page_viewed",
        "occurred_at": "2026-03-02T10:00:00Z",
        "url": "https://b.com/x",
        "attributes": {"company_size": 51},
    }


def _labels(tmp_path: Path, lines: list[str], **options: Any) -> Any:
    return label_leads(load_events(_write(tmp_path, lines)), LabelOptions(**options))


def test_labels_and_decision_moments(tmp_path: Path) -> None:
    lines = [
        # won after an opportunity: positive, decided at the opportunity (its first outcome)
        _line("won@x.com", "form_submitted", 0),
        _line("won@x.com", "opportunity_created", 10),
        _line("won@x.com", "deal_lost", 20),
        _line("won@x.com", "deal_won", 40),
        # only negative verdicts: negative, decided at the first one
        _line("lost@x.com", "form_submitted", 0),
        _line("lost@x.com", "disqualified", 5),
        # open opportunity: no verdict yet, left out
        _line("open@x.com", "form_submitted", 0),
        _line("open@x.com", "opportunity_created", 5),
        # no outcome, older than the maturity window: negative at first event + 90 days
        _line("quiet@x.com", "form_submitted", 1),
        # no outcome, too young: left out
        _line("young@x.com", "form_submitted", 150),
        # an outcome with nothing before it: left out
        _line("imported@x.com", "deal_won", 30),
        _line("imported@x.com", "email_opened", 31),
        _line("end@x.com", "email_opened", 200),
    ]
    labelled = _labels(tmp_path, lines)
    got = dict(zip(labelled.emails, zip(labelled.y, labelled.cuts, strict=True), strict=True))
    assert got == {
        "won@x.com": (1, T0 + timedelta(days=10)),
        "lost@x.com": (0, T0 + timedelta(days=5)),
        "quiet@x.com": (0, T0 + timedelta(days=91)),
    }
    assert labelled.excluded == {
        EXCLUDED_PENDING: 1,
        EXCLUDED_RECENT: 2,
        EXCLUDED_NO_ACTIVITY: 1,
    }


def test_the_positive_outcome_and_the_maturity_window_are_options(tmp_path: Path) -> None:
    lines = [
        _line("open@x.com", "form_submitted", 0),
        _line("open@x.com", "opportunity_created", 5),
        _line("quiet@x.com", "form_submitted", 100),
        _line("end@x.com", "email_opened", 200),
    ]
    labelled = _labels(tmp_path, lines, positive=(EventType.OPPORTUNITY_CREATED,), maturity_days=30)
    assert dict(zip(labelled.emails, labelled.y, strict=True)) == {"open@x.com": 1, "quiet@x.com": 0}
    with pytest.raises(CommandError, match="--positive must name outcome events"):
        LabelOptions(positive=(EventType.EMAIL_OPENED,))
    with pytest.raises(CommandError, match="--maturity-days"):
        LabelOptions(maturity_days=0)


def test_a_score_at_the_decision_moment_never_sees_later_events_or_outcomes(tmp_path: Path) -> None:
    history = load_events(
        _write(
            tmp_path,
            [
                _line("a@x.com", "form_submitted", 0, attributes={"job_title": "VP Sales"}),
                _line("a@x.com", "demo_requested", 1),
                _line("a@x.com", "deal_won", 2),
                _line("a@x.com", "demo_requested", 2),  # same moment as the outcome: not before it
                _line("a@x.com", "form_submitted", 3, attributes={"job_title": "Intern"}),
            ],
        )
    )
    events = history.leads["a@x.com"]
    cut = T0 + timedelta(days=2)
    assert [e.event for e in before(events, cut)] == [EventType.FORM_SUBMITTED, EventType.DEMO_REQUESTED]
    model = load_model("bundled:default")
    state = replay(model, "a@x.com", events, cut)
    assert state.attributes["job_title"] == "VP Sales"
    assert state.counts["type:demo_requested"] == 1
    assert "type:deal_won" not in state.counts
    # the same state the runtime folds event by event
    folded = engine.score(model, state, cut)
    later = engine.score(
        model, replay(model, "a@x.com", events, cut + timedelta(days=5)), cut + timedelta(days=5)
    )
    assert folded.total != later.total


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate", "--history", "h.jsonl", "--target", "y", "--out", "m.yaml"], "--target is for CSV"),
        (["calibrate", "--out", "m.yaml"], "give an event history (--history FILE.jsonl) or a CSV file"),
        (["calibrate", "h.csv", "--id-column", "id", "--out", "m.yaml"], "a CSV history needs --target"),
        (["calibrate", "h.csv", "--history", "h.jsonl", "--out", "m.yaml"], "not both"),
        (
            [
                "calibrate",
                "h.csv",
                "--target",
                "y",
                "--id-column",
                "id",
                "--positive",
                "deal_won",
                "--out",
                "m.yaml",
            ],
            "--positive and --maturity-days are for event histories",
        ),
        (
            ["backtest", "bundled:default", "--history", "h.jsonl", "--mapping", "m.yaml"],
            "--mapping is for CSV",
        ),
    ],
)
def test_the_two_modes_refuse_each_others_options(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from leadscore.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.yaml").exists()


def test_a_history_with_too_few_outcomes_is_refused_with_the_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from leadscore.cli import main

    lines = [_line(f"l{i}@x.com", "form_submitted", i) for i in range(30)]
    lines += [_line("l0@x.com", "deal_won", 40), _line("young@x.com", "email_opened", 200)]
    path = _write(tmp_path, lines)
    assert main(["calibrate", "--history", str(path), "--out", str(tmp_path / "m.yaml")]) == 2
    err = capsys.readouterr().err
    assert "1 positive and 29 negative leads" in err and "1 with no outcome yet" in err
    assert not (tmp_path / "m.yaml").exists()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (_line("a@b.com", "email_opened", 365 * 50), "Value error, occurred_at is in the future"),
        (_line("a@b.com", "email_opened", 365 * 300), "line 2: occurred_at: Value error, time 2325"),
        (json.dumps({"email": "a@b.com", "event": "email_opened", "occurred_at": "1975-01-03T00:00:00Z"}),
         "line 2: occurred_at: Value error, occurred_at before 2005-01-01"),
        (_line("a@b.com", "form_submitted", 1, attributes={"company_size": 1e400}),
         "line 2: attributes: Value error, a value cannot be used"),
    ],
)  # fmt: skip
def test_moments_a_model_cannot_score_and_unusable_values_are_refused(
    tmp_path: Path, line: str, expected: str
) -> None:
    """A line from the future would move the history's end (relabelling every lead); one from
    decades ago or a size of 1e400 would overflow the scoring arithmetic."""
    path = _write(tmp_path, [_line("ok@b.com", "email_opened", 0), line])
    with pytest.raises(CommandError) as caught:
        load_events(path)
    assert expected in caught.value.message


def test_an_absurd_maturity_window_is_refused() -> None:
    with pytest.raises(CommandError, match="at most 3650"):
        LabelOptions(maturity_days=float("inf"))


def test_engaged_time_round_trips_through_a_history_and_replays_into_time_rules(tmp_path: Path) -> None:
    # Given a history with a visit, a pricing view and 20 minutes of engaged time
    lines = [
        _line("ann@acme.com", "visit_returned", 1, url="https://acme.com/"),
        _line("ann@acme.com", "page_viewed", 1, url="https://acme.com/pricing"),
        _line("ann@acme.com", "page_engaged", 1.01, url="https://acme.com/pricing", engaged_seconds=700),
        _line("ann@acme.com", "page_engaged", 1.02, url="https://acme.com/docs", engaged_seconds=500),
    ]
    history = load_events(_write(tmp_path, lines))
    events = history.leads["ann@acme.com"]
    # When its lines are written again and read back
    again = load_events(_write(tmp_path, [e.to_line() for e in events])).leads["ann@acme.com"]
    # Then nothing is lost, and a replay scores the engaged time as the runtime would
    assert again == events
    assert [e.engaged_seconds for e in events] == [None, None, 700, 500]
    assert json.loads(events[2].to_line())["engaged_seconds"] == 700
    model = load_model()
    state = replay(model, "ann@acme.com", events, T0 + timedelta(days=2))
    assert state.counts["time_on_site"] == 1200
    assert "pricing_read" in state.accumulators and "returning_visitor" in state.accumulators


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (_line("a@b.com", "page_engaged", 1), "required for page_engaged events and only for them"),
        (_line("a@b.com", "page_viewed", 1, engaged_seconds=20), "required for page_engaged events and only"),
        (_line("a@b.com", "page_engaged", 1, engaged_seconds=1801), "line 2: engaged_seconds:"),
    ],
)
def test_a_history_line_gets_engaged_seconds_right_or_is_refused(
    tmp_path: Path, line: str, expected: str
) -> None:
    with pytest.raises(CommandError) as caught:
        load_events(_write(tmp_path, [_line("ok@b.com", "email_opened", 0), line]))
    assert expected in caught.value.message


def test_export_history_writes_a_ledger_page_engaged_event_with_its_seconds() -> None:
    from decimal import Decimal

    from leadscore.history_export import history_line

    item = {
        "lead_id": "ld_" + "a" * 24,
        "event_id": "ev_" + "b" * 32,
        "email": "ann@acme.com",
        "event_type": "page_engaged",
        "provider": "generic",
        "occurred_at": "2026-03-02T10:00:00Z",
        "received_at": "2026-03-02T10:00:05Z",
        "url": "https://acme.com/pricing",
        "engaged_seconds": Decimal(95),  # what DynamoDB hands back
        "attributes": {},
    }

    kind, line = history_line(item)

    assert kind == "line"
    assert json.loads(line)["engaged_seconds"] == 95
    assert HistoryEvent.model_validate_json(line).to_lead_event().engaged_seconds == 95
