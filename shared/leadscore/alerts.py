"""Alerts people read: one stage change, worded once, rendered per channel.

`build_alert` turns a stage-change message (the public contract, `StageChanged`/`StageChangedV2`),
the lead's recent events and the console's address into an `Alert`: who (name, title, company,
email), what (the stage change, score, grade, probability when the model has one), why (the top
reasons with their points), the last few events and a link to the lead in the console. The
renderers (`email_subject`, `email_text`, `sms_text`, `slack_payload`, `teams_payload`) all use
the same phrases (`headline`, `identity_line`, `score_line`, `why_line`, `reason_line`,
`event_line`, `link_line`), so every channel says the same thing.

Pure: no I/O. Everything that came from a webhook (names, titles, companies, emails, event URLs)
is attacker-controlled: `build_alert` strips control characters and bounds every field (so an
alert, and the SNS message that carries it, has a small documented worst case), and each renderer
escapes for its channel (Slack mrkdwn `& < >` with auto-linking off, Teams markdown, single-line
email subjects and SMS).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field

from leadscore.messages import StageChanged, StageChangedV2
from leadscore.schema import Model

# Bounds of what an alert carries (characters): the worst case stays a few KB in every channel.
MAX_NAME = 80
MAX_FIELD = 100  # title, company
MAX_EMAIL = 254
MAX_LABEL = 120
MAX_URL = 300
MAX_LINK = 400
RECENT_EVENTS = 5
MAX_REASONS = 5
SMS_LIMIT = 160
SUBJECT_LIMIT = 99  # SNS: "less than 100 characters", no line breaks or control characters
ELLIPSIS = "..."  # ASCII: a GSM-7 SMS stays GSM-7

REASON_WORDING = {
    "threshold": "its score crossed the {stage} threshold",
    "decay": "its score faded with time",
    "rescore": "the lead was rescored with a new model",
    "not_applicable": "the model no longer applies to the lead",
}


class AlertReason(Model):
    label: str
    points: float


class AlertEvent(Model):
    type: str
    at: datetime
    url: str | None = None


class Alert(Model):
    """Everything every channel shows of one stage change (bounded, control characters removed)."""

    transition_id: str
    lead_id: str
    name: str
    title: str | None = None
    company: str | None = None
    email: str
    from_stage: str
    to_stage: str
    direction: Literal["promotion", "demotion"]
    reason: str
    occurred_at: datetime
    score: float
    grade: str
    probability: float | None = None
    reasons: list[AlertReason] = Field(default_factory=list, max_length=MAX_REASONS)
    relative_to_average: bool = False
    events: list[AlertEvent] = Field(default_factory=list, max_length=RECENT_EVENTS)
    link: str | None = None
    model: str | None = None
    model_version: str


# ------------------------------------------------------------------------------------ building
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")


def clean(value: Any, limit: int) -> str:
    """One line of at most `limit` characters: control, line-separator and bidi-override
    characters become a space, whitespace runs collapse, a cut ends with '...'."""
    text = unicodedata.normalize("NFC", str(value))
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _attribute(attributes: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = attributes.get(name)
    if value is None or isinstance(value, bool):
        return None
    text = clean(value, limit)
    return text or None


def lead_link(console_url: str | None, lead_id: str) -> str | None:
    """The lead's page in the console (`{console}/leads/{lead_id}`), or None without a console."""
    if not console_url:
        return None
    return f"{console_url.rstrip('/')}/leads/{quote(lead_id, safe='')}"[:MAX_LINK]


def build_alert(
    message: StageChanged,
    recent_events: Iterable[Mapping[str, Any]] = (),
    console_url: str | None = None,
) -> Alert:
    """The alert of a stage-change message. `recent_events`: ledger items (`EventLedger.recent`:
    event_type, occurred_at, url), newest first; the first RECENT_EVENTS are shown."""
    attributes = message.attributes
    email = clean(message.email, MAX_EMAIL)
    first = _attribute(attributes, "first_name", MAX_NAME)
    last = _attribute(attributes, "last_name", MAX_NAME)
    name = clean(" ".join(p for p in (first, last) if p), MAX_NAME) or email
    events = []
    for item in list(recent_events)[:RECENT_EVENTS]:
        url = item.get("url")
        events.append(
            AlertEvent(
                type=clean(item.get("event_type", "event"), 40),
                at=_as_time(item.get("occurred_at")),
                url=clean(url, MAX_URL) if url else None,
            )
        )
    return Alert(
        transition_id=message.transition_id,
        lead_id=message.lead_id,
        name=name,
        title=_attribute(attributes, "job_title", MAX_FIELD),
        company=_attribute(attributes, "company", MAX_FIELD),
        email=email,
        from_stage=clean(message.from_stage, 40),
        to_stage=clean(message.to_stage, 40),
        direction=message.direction,
        reason=message.reason,
        occurred_at=message.occurred_at,
        score=message.score.total,
        grade=clean(message.score.grade, 10),
        probability=message.score.probability,
        reasons=[
            AlertReason(label=clean(r.label, MAX_LABEL), points=r.points)
            for r in message.top_reasons[:MAX_REASONS]
        ],
        relative_to_average=message.average_score is not None,
        events=events,
        link=lead_link(console_url, message.lead_id),
        model=message.model if isinstance(message, StageChangedV2) else None,
        model_version=clean(message.model_version, 60),
    )


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------ the wording (once)
def _points(points: float) -> str:
    return f"{points:+.1f}"


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def headline(alert: Alert) -> str:
    if alert.direction == "promotion":
        return f"{alert.name} is now {alert.to_stage} (was {alert.from_stage})"
    return f"{alert.name} dropped from {alert.from_stage} to {alert.to_stage}"


def identity_line(alert: Alert) -> str:
    """'VP Sales at Acme Corp, jane@acme.example' (the parts known)."""
    role = " at ".join(p for p in (alert.title, alert.company) if p)
    return ", ".join(p for p in (role, alert.email) if p)


def score_line(alert: Alert) -> str:
    text = f"Score {_number(alert.score)}, grade {alert.grade}"
    if alert.probability is not None:
        text += f", {round(alert.probability * 100)}% likely to convert"
    return text


def why_line(alert: Alert) -> str:
    wording = REASON_WORDING.get(alert.reason, alert.reason).format(stage=alert.to_stage)
    return f"Why: {wording}."


def reasons_heading(alert: Alert) -> str:
    return "Top reasons (points vs. the average lead):" if alert.relative_to_average else "Top reasons:"


def reason_line(reason: AlertReason) -> str:
    return f"{_points(reason.points):>6}  {reason.label}"


def event_time(event: AlertEvent) -> str:
    return event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def event_line(event: AlertEvent) -> str:
    return "  ".join(p for p in (event_time(event), event.type.replace("_", " "), event.url) if p)


EVENTS_HEADING = "Recent activity:"
LINK_LABEL = "Open the lead"


def link_line(alert: Alert) -> str | None:
    return f"{LINK_LABEL}: {alert.link}" if alert.link else None


def footer(alert: Alert) -> str:
    model = f"model {alert.model} " if alert.model else "model "
    return f"leadscore - {model}{alert.model_version} - transition {alert.transition_id}"


# ---------------------------------------------------------------------------------------- email
def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _clip_units(text: str, limit: int) -> str:
    """The text cut to at most `limit` UTF-16 code units (how SNS, a Java service, counts a
    subject's characters: an emoji is two), a cut ending with '...'."""
    if _utf16_units(text) <= limit:
        return text
    kept, used = [], len(ELLIPSIS)
    for char in text:
        used += _utf16_units(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept).rstrip() + ELLIPSIS


def email_subject(alert: Alert) -> str:
    """One line under 100 characters (SNS's limit for a subject, counted in UTF-16 code units):
    '[SQL] Jane Doe, Acme - score 72'. A subject SNS refuses would fail the whole publish, the
    machines' JSON contract with it."""
    tail = f" - score {_number(alert.score)}"
    head = f"[{alert.to_stage}] " if alert.direction == "promotion" else f"[left {alert.from_stage}] "
    who = ", ".join(p for p in (alert.name, alert.company) if p)
    room = SUBJECT_LIMIT - _utf16_units(head) - _utf16_units(tail)
    return head + _clip_units(clean(who, max(room, 10)), max(room, 10)) + tail


def email_text(alert: Alert) -> str:
    """The plain-text body an `email` subscriber reads."""
    lines = [headline(alert), identity_line(alert), "", score_line(alert), why_line(alert)]
    if alert.reasons:
        lines += ["", reasons_heading(alert), *(f"  {reason_line(r)}" for r in alert.reasons)]
    if alert.events:
        lines += ["", EVENTS_HEADING, *(f"  {event_line(e)}" for e in alert.events)]
    link = link_line(alert)
    if link:
        lines += ["", link]
    lines += ["", "--", footer(alert)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ sms
def sms_text(alert: Alert) -> str:
    """One line of at most 160 characters: stage, who, score, the top reason, the link."""
    stage = alert.to_stage if alert.direction == "promotion" else f"left {alert.from_stage}"
    score = f"score {_number(alert.score)} ({alert.grade})"
    top = f"Top reason: {alert.reasons[0].label} {_points(alert.reasons[0].points)}" if alert.reasons else ""
    link = alert.link or ""
    who = ", ".join(p for p in (alert.name, alert.company) if p)
    # what must stay (stage, score, link) first; the name and the reason share what is left
    fixed = len(f"{stage}: ") + len(f", {score}") + (len(f" {link}") if link else 0)
    room = SMS_LIMIT - fixed
    if len(link) > SMS_LIMIT // 2:  # a console URL too long for one SMS: leave it out
        link, room = "", room + len(f" {alert.link}")
    who = clean(who, max(12, min(len(who), room)))
    room -= len(who)
    parts = f"{stage}: {who}, {score}"
    if top and room > 20:
        parts += ". " + clean(top, room - 2)
    if link:
        parts += f" {link}"
    return clean(parts, SMS_LIMIT)


# ---------------------------------------------------------------------------------------- slack
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def slack_escape(text: str) -> str:
    """Slack mrkdwn: `& < >` escaped, so `<!channel>`, `<@U1>` and `<https://x|click>` stay text."""
    return text.translate(_SLACK_ESCAPES)


def _slack_text(text: str) -> dict[str, Any]:
    # verbatim: no auto-linking of URLs, channel names or mentions in what we did not write
    return {"type": "mrkdwn", "text": slack_escape(text), "verbatim": True}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """An incoming-webhook message: Block Kit blocks, and `text` for notifications and old clients."""
    blocks: list[dict[str, Any]] = [
        # a section, not a header block: a header is plain_text, which cannot be escaped
        {"type": "section", "text": _slack_text(headline(alert))},
        {
            "type": "section",
            "text": _slack_text(f"{identity_line(alert)}\n{score_line(alert)}\n{why_line(alert)}"),
        },
    ]
    if alert.reasons:
        lines = [reasons_heading(alert), *(reason_line(r) for r in alert.reasons)]
        blocks.append({"type": "section", "text": _slack_text("\n".join(lines))})
    if alert.events:
        lines = [EVENTS_HEADING, *(event_line(e) for e in alert.events)]
        blocks.append({"type": "section", "text": _slack_text("\n".join(lines))})
    if alert.link:  # our own link: the one thing written as a link
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": LINK_LABEL}, "url": alert.link}
                ],
            }
        )
    blocks.append({"type": "context", "elements": [_slack_text(footer(alert))]})
    return {
        "text": slack_escape(f"{headline(alert)} - {score_line(alert)}"),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


# ---------------------------------------------------------------------------------------- teams
_TEAMS_SPECIAL = re.compile(r"([\\`*_\[\]~])")
_TEAMS_LINE_START = re.compile(r"^(\s*)([-+#>]|\d+\.)(?=\s)")
_TEAMS_ANGLES = str.maketrans({"<": "\u2039", ">": "\u203a"})


def teams_escape(text: str) -> str:
    """Teams markdown: the characters that make emphasis, code or links backslash-escaped (a name
    cannot become `[a link](…)`), a list or heading marker at the start escaped, and `<` `>` shown
    as the look-alike angle quotes U+2039 and U+203A (no `<at>` mention tags or HTML from a name)."""
    escaped = _TEAMS_SPECIAL.sub(r"\\\1", text.translate(_TEAMS_ANGLES))
    # "- x", "# x", "> x": escape the marker; "1. x": escape the dot
    return _TEAMS_LINE_START.sub(
        lambda m: m[1] + (m[2][:-1] + "\\." if m[2][-1] == "." else "\\" + m[2]), escaped
    )


def _teams_block(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": teams_escape(text), "wrap": True, **extra}


def teams_payload(alert: Alert) -> dict[str, Any]:
    """A message with one Adaptive Card: what Teams incoming webhooks and Workflows accept."""
    body: list[dict[str, Any]] = [
        _teams_block(headline(alert), size="Medium", weight="Bolder"),
        _teams_block(identity_line(alert), spacing="None"),
        _teams_block(score_line(alert)),
        _teams_block(why_line(alert), spacing="None"),
    ]
    if alert.reasons:
        body.append(_teams_block(reasons_heading(alert), weight="Bolder"))
        body += [_teams_block(reason_line(r), spacing="None") for r in alert.reasons]
    if alert.events:
        body.append(_teams_block(EVENTS_HEADING, weight="Bolder"))
        body += [_teams_block(event_line(e), spacing="None") for e in alert.events]
    body.append(_teams_block(footer(alert), isSubtle=True, size="Small"))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if alert.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": LINK_LABEL, "url": alert.link}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def render_chat(alert: Alert, kind: Literal["slack", "teams"]) -> dict[str, Any]:
    return slack_payload(alert) if kind == "slack" else teams_payload(alert)


# ----------------------------------------------------------------------------------- SNS bodies
# Protocols that read the text; every other one (sqs, lambda, http, https, firehose, application)
# gets `default`: the versioned JSON contract, byte for byte.
TEXT_PROTOCOLS = ("email", "email-json", "sms")


def sns_message(contract_body: str, alert: Alert) -> str:
    """The `Message` of a `MessageStructure="json"` publish: `default` is the contract body as
    published before alerts existed, `email`/`email-json` the email text, `sms` the one line.
    The contract is not repeated under sqs/lambda/http(s): they fall back to `default`, and the
    whole structure counts towards SNS's 256 KB."""
    return json.dumps(
        {
            "default": contract_body,
            "email": email_text(alert),
            "email-json": email_text(alert),
            "sms": sms_text(alert),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
