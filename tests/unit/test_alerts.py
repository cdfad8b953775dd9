"""Alerts people read: one wording, rendered per channel, safe with attacker-controlled names."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from leadscore import alerts
from leadscore.notifications import StageChanged, StageChangedV2

pytestmark = pytest.mark.unit

CONSOLE = "http://127.0.0.1:8421"
EVENTS = [
    {
        "event_type": "demo_requested",
        "occurred_at": "2026-11-30T06:58:00+00:00",
        "url": "https://acme.example/demo",
    },
    {
        "event_type": "page_viewed",
        "occurred_at": "2026-11-29T16:02:00+00:00",
        "url": "https://acme.example/pricing",
    },
    {"event_type": "email_opened", "occurred_at": "2026-11-28T09:00:00+00:00"},
]


def _message(
    attributes: dict[str, Any] | None = None,
    probability: float | None = 0.312,
    labels: tuple[str, ...] = ("Requested a demo", "Visited the pricing page"),
    **fields: Any,
) -> StageChanged:
    data: dict[str, Any] = {
        "transition_id": "t-alert-1",
        "lead_id": "lead0123abcd",
        "email": "jane@acme.example",
        "from_stage": "MQL",
        "to_stage": "SQL",
        "direction": "promotion",
        "reason": "threshold",
        "occurred_at": "2026-11-30T07:00:00Z",
        "score": {
            "total": 72.41,
            "fit": 30.0,
            "engagement": 45.0,
            "negative": -2.59,
            "grade": "A",
            "probability": probability,
        },
        "top_reasons": [
            {"rule_id": f"r{i}", "label": label, "points": 25.0 - 10 * i} for i, label in enumerate(labels)
        ],
        "attributes": attributes
        if attributes is not None
        else {"first_name": "Jane", "last_name": "Doe", "job_title": "VP Sales", "company": "Acme Corp"},
        "suppressed": False,
        "model_version": "2026.11",
    }
    data.update(fields)
    return StageChanged.model_validate(data)


def _alert(**kwargs: Any) -> alerts.Alert:
    console = kwargs.pop("console", CONSOLE)
    events = kwargs.pop("events", EVENTS)
    return alerts.build_alert(_message(**kwargs), events, console)


def _slack_texts(payload: dict[str, Any]) -> str:
    """Every text a Slack client shows of the payload, mrkdwn entities decoded."""
    found: list[str] = [payload["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in {"mrkdwn", "plain_text"}:
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["blocks"])
    text = "\n".join(found)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _teams_texts(payload: dict[str, Any]) -> str:
    card = payload["attachments"][0]["content"]
    text = "\n".join(block["text"] for block in card["body"])
    return re.sub(r"\\(.)", r"\1", text).replace("\u2039", "<").replace("\u203a", ">")


def test_email_alert_says_who_what_why_what_they_did_and_links_to_the_console() -> None:
    alert = _alert()

    body = alerts.email_text(alert)

    assert body.splitlines()[:2] == [
        "Jane Doe is now SQL (was MQL)",
        "VP Sales at Acme Corp, jane@acme.example",
    ]
    assert "Score 72.4, grade A, 31% likely to convert" in body
    assert "Why: its score crossed the SQL threshold." in body
    assert "   +25.0  Requested a demo\n   +15.0  Visited the pricing page\n" in body
    assert "  2026-11-30 06:58 UTC  demo requested  https://acme.example/demo\n" in body
    assert "  2026-11-28 09:00 UTC  email opened\n" in body
    assert "Open the lead: http://127.0.0.1:8421/leads/lead0123abcd\n" in body
    assert alerts.email_subject(alert) == "[SQL] Jane Doe, Acme Corp - score 72.4"


def test_every_channel_carries_the_same_lines() -> None:
    alert = _alert()
    lines = [
        alerts.headline(alert),
        alerts.identity_line(alert),
        alerts.score_line(alert),
        alerts.why_line(alert),
        *(alerts.reason_line(r) for r in alert.reasons),
        *(alerts.event_line(e) for e in alert.events),
    ]

    channels = {
        "email": alerts.email_text(alert),
        "slack": _slack_texts(alerts.slack_payload(alert)),
        "teams": _teams_texts(alerts.teams_payload(alert)),
    }

    for name, text in channels.items():
        missing = [line for line in lines if line not in text]
        assert missing == [], name
    slack_button = alerts.slack_payload(alert)["blocks"][-2]["elements"][0]
    teams_action = alerts.teams_payload(alert)["attachments"][0]["content"]["actions"][0]
    assert slack_button["url"] == teams_action["url"] == f"{CONSOLE}/leads/lead0123abcd"


def test_without_a_probability_console_or_events_the_alert_leaves_them_out() -> None:
    alert = _alert(probability=None, console=None, events=[])

    body = alerts.email_text(alert)

    assert "likely" not in body and "Open the lead" not in body and "Recent activity" not in body
    assert "actions" not in alerts.teams_payload(alert)["attachments"][0]["content"]
    assert all(block["type"] != "actions" for block in alerts.slack_payload(alert)["blocks"])
    assert "http" not in alerts.sms_text(alert)


def test_a_lead_without_a_name_is_named_by_email_and_a_demotion_reads_as_one() -> None:
    alert = _alert(attributes={}, from_stage="SQL", to_stage="MQL", direction="demotion", reason="decay")

    assert alerts.headline(alert) == "jane@acme.example dropped from SQL to MQL"
    assert alerts.why_line(alert) == "Why: its score faded with time."
    assert alerts.email_subject(alert).startswith("[left SQL] jane@acme.example")
    assert alerts.sms_text(alert).startswith("left SQL: jane@acme.example")


def test_a_catalog_message_names_its_model() -> None:
    message = StageChangedV2.model_validate(
        {**_message().model_dump(by_alias=True), "version": 2, "model": "smb"}
    )

    alert = alerts.build_alert(message, [], None)

    assert alert.model == "smb"
    assert "model smb 2026.11" in alerts.email_text(alert)


def test_sms_is_one_line_of_at_most_160_characters_whatever_the_names() -> None:
    long = "W" * 500
    alert = _alert(
        attributes={"first_name": long, "last_name": long, "company": "C\n" * 200},
        labels=("L" * 300,),
        console="https://console." + "x" * 150 + ".example",
    )

    text = alerts.sms_text(alert)

    assert len(text) <= 160 and "\n" not in text
    assert text.startswith("SQL: WWW") and "score 72.4 (A)" in text


def test_short_sms_keeps_stage_name_score_top_reason_and_link() -> None:
    text = alerts.sms_text(_alert())

    assert text == (
        "SQL: Jane Doe, Acme Corp, score 72.4 (A). Top reason: Requested a demo +25.0 "
        "http://127.0.0.1:8421/leads/lead0123abcd"
    )


def test_email_subject_is_one_short_line_whatever_the_name() -> None:
    alert = _alert(attributes={"first_name": "Eve\r\nBcc: victim@example.com", "last_name": "X" * 300})

    subject = alerts.email_subject(alert)

    assert len(subject) < 100
    assert not re.search(r"[\x00-\x1f\x7f]", subject)
    assert subject.startswith("[SQL] Eve Bcc: victim@example.com XXX")


@pytest.mark.parametrize("name", ["\U0001f600" * 80, "\U0001f525 Jane " * 20, "\u5c71\u7530" * 40])
def test_email_subject_is_under_100_characters_as_sns_counts_them(name: str) -> None:
    """SNS (Java) counts a subject in UTF-16 code units: an emoji is two. A longer subject is an
    InvalidParameter, and the publish carrying the JSON contract for machines fails with it."""
    alert = _alert(attributes={"first_name": name, "company": "Acme \U0001f680 Corp"})

    subject = alerts.email_subject(alert)

    assert len(subject.encode("utf-16-le")) // 2 < 100
    assert subject.startswith("[SQL] " + name[:2]) and subject.endswith(" - score 72.4")


def test_names_cannot_add_lines_or_reorder_text_in_the_email() -> None:
    alert = _alert(
        attributes={"first_name": "Eve\nOpen the lead: https://evil.example", "job_title": "a\u202eb\u2028c"}
    )

    body = alerts.email_text(alert)

    assert [line for line in body.splitlines() if line.startswith("Open the lead")] == [
        "Open the lead: http://127.0.0.1:8421/leads/lead0123abcd"
    ]
    assert "\u202e" not in body and "\u2028" not in body


HOSTILE = (
    "<!channel> <https://evil.example|click here> & <@U123> [x](https://evil.example) **b** <at>Bob</at>"
)


def test_slack_payload_escapes_mrkdwn_and_turns_auto_linking_off() -> None:
    alert = _alert(
        attributes={"first_name": HOSTILE, "company": "<!here>"}, events=[{**EVENTS[0], "url": "<!everyone>"}]
    )

    payload = alerts.slack_payload(alert)
    raw = json.dumps(payload)

    assert "<!channel>" not in raw and "<!here>" not in raw and "<!everyone>" not in raw
    assert "<https://evil" not in raw and "<@U123>" not in raw
    assert "&lt;!channel&gt; &lt;https://evil.example|click here&gt; &amp; &lt;@U123&gt;" in payload["text"]
    mrkdwn = [
        e
        for b in payload["blocks"]
        for e in [b.get("text"), *b.get("elements", [])]
        if e and e["type"] == "mrkdwn"
    ]
    assert mrkdwn and all(e["verbatim"] is True for e in mrkdwn)
    assert payload["unfurl_links"] is False
    urls = re.findall(r'"url": "([^"]*)"', raw)
    assert urls == [f"{CONSOLE}/leads/lead0123abcd"]


def test_teams_payload_escapes_markdown_so_names_make_no_links_or_mentions() -> None:
    alert = _alert(attributes={"first_name": "[x](https://evil.example) **b** <at>Bob</at>"})

    payload = alerts.teams_payload(alert)
    texts = [block["text"] for block in payload["attachments"][0]["content"]["body"]]

    assert not any(re.search(r"(?<!\\)\[x(?<!\\)\]\(", t) for t in texts)
    assert not any("<at>" in t or "**b**" in t for t in texts)
    assert texts[0].startswith(
        "\\[x\\](https://evil.example) \\*\\*b\\*\\* \u2039at\u203aBob\u2039/at\u203a is now SQL"
    )
    assert alerts.teams_escape("1. first") == r"1\. first" and alerts.teams_escape("- item") == r"\- item"
    actions = payload["attachments"][0]["content"]["actions"]
    assert [a["url"] for a in actions] == [f"{CONSOLE}/leads/lead0123abcd"]


def test_sns_message_keeps_the_contract_as_default_and_gives_text_protocols_the_alert() -> None:
    message = _message()
    body = message.model_dump_json(by_alias=True)
    alert = alerts.build_alert(message, EVENTS, CONSOLE)

    structure = json.loads(alerts.sns_message(body, alert))

    assert set(structure) == {"default", "email", "email-json", "sms"}
    assert structure["default"] == body
    assert structure["email"] == structure["email-json"] == alerts.email_text(alert)
    assert structure["sms"] == alerts.sms_text(alert)


def test_the_largest_possible_alert_stays_far_below_the_sns_limit() -> None:
    # Given: every attribute at its longest (domain.MAX_TEXT) in 4-byte characters, the longest
    # email, five long labels, five events with the longest URLs the ledger keeps
    widest = "\U0001f600" * 500
    message = _message(
        attributes=dict.fromkeys(
            ("first_name", "last_name", "job_title", "company", "industry", "country"), widest
        ),
        labels=tuple("\U0001f600" * 200 for _ in range(5)),
        email="a" * 64 + "@" + "b" * 185 + ".com",
    )
    events = [
        {
            "event_type": "page_viewed",
            "occurred_at": datetime.now(UTC),
            "url": "https://x/" + "\U0001f600" * 2048,
        }
    ] * 9

    # When
    alert = alerts.build_alert(message, events, "https://" + "c" * 190)
    structure = alerts.sns_message(message.model_dump_json(by_alias=True), alert)

    # Then: the text parts are bounded, and the whole structure is a fraction of 256 KB
    assert len(alerts.email_text(alert)) < 4_000
    assert len(structure.encode()) < 64 * 1024
    assert len(alert.events) == alerts.RECENT_EVENTS
