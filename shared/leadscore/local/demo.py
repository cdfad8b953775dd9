"""The demo scenario: a few hundred leads of mixed fit and two months of their activity, generated
deterministically from a seed. Pure data, no I/O: `leadscore.local.replay` sends it through the
real webhooks of a local stack.

Times are simulated: every step carries the moment it happens (`at`), in the past of `now`.
Payloads carry those times the way each provider does (generic `occurred_at`, Typeform
`submitted_at`, SendGrid `timestamp`, SES event timestamps); signatures are made with the real
time when a step is sent, since providers sign at delivery. HTML forms have no time field (the
event happens when the form is posted), so they all happen on the last day.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

SITE = "https://www.leadscore.example"
HTML_SITE_ID = "www-leadscore"
DEMO_FORM_ID = "lT4Z3j"  # the Typeform "Talk to sales" form (mapped to demo_requested in the secrets)
NEWSLETTER_FORM_ID = "nW8sLt"

FIRST = (
    "Ann Ben Carla Dev Elif Farid Greta Hugo Ines Jonas Kira Liam Maya Noah Olga Priya Quinn Rafael "
    "Sara Tom Uma Victor Wen Yusuf Zoe"
).split()
LAST = (
    "Lee Novak Ortega Schmidt Tanaka Kowalski Dubois Rossi Silva Okafor Johansson Patel Nguyen Murphy "
    "Haddad Costa Berg Ivanova Moreau Fischer"
).split()
TARGETS = [  # (company, domain, employees, industry, country)
    ("Northwind Analytics", "northwind-analytics.example", 420, "Software", "DE"),
    ("Globex", "globex.example", 2300, "Technology", "US"),
    ("Initech", "initech.example", 650, "Financial Services", "US"),
    ("Umbrella Health", "umbrella-health.example", 5200, "Healthcare", "GB"),
    ("Fabrikam", "fabrikam.example", 1200, "SaaS", "NL"),
    ("Contoso", "contoso.example", 880, "E-commerce", "FR"),
    ("Tailspin Pay", "tailspin-pay.example", 310, "Fintech", "CA"),
    ("Wide World Importers", "wideworld.example", 240, "Retail", "AU"),
]
SMALL = [
    ("Blue Yonder Studio", "blueyonder-studio.example", 12, "Marketing", "ES"),
    ("Litware", "litware.example", 45, "Software", "PL"),
    ("Adventure Works", "adventure-works.example", 150, "Manufacturing", "IT"),
    ("Proseware", "proseware.example", 80, "Education", "BR"),
    ("Coho Winery", "coho-winery.example", 25, "Food & Beverage", "CL"),
]
COMPETITORS = [
    ("RivalScore", "rivalscore.example", 140, "Software", "US"),
    ("LeadRank", "leadrank.example", 60, "SaaS", "GB"),
]
FREE = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com"]
DISPOSABLE = ["mailinator.com", "yopmail.com", "10minutemail.com"]
TITLES = {
    "decision_maker": [
        "CEO",
        "CTO",
        "VP Marketing",
        "VP of Sales",
        "Chief Revenue Officer",
        "Head of Growth",
        "Director of Marketing Operations",
    ],
    "manager": [
        "Marketing Manager",
        "Sales Operations Manager",
        "Demand Generation Manager",
        "Team Lead, Inside Sales",
        "CRM Manager",
    ],
    "individual": ["Marketing Specialist", "Data Analyst", "Content Writer", "SDR", "Growth Associate"],
    "student": ["Student", "Marketing Intern", "MBA Student", "Graduate Trainee"],
    "competitor": ["Product Manager", "Product Marketing Manager", "Growth Analyst"],
    "job_seeker": ["Account Executive", "Software Engineer", "Marketing Coordinator"],
}
Persona = Literal[
    "decision_maker",
    "manager",
    "individual",
    "student",
    "competitor",
    "job_seeker",
    "disposable",
    "role",
    "dormant",
]
MIX: list[tuple[Persona, float]] = [
    ("decision_maker", 0.14),
    ("manager", 0.22),
    ("individual", 0.15),
    ("student", 0.12),
    ("competitor", 0.05),
    ("job_seeker", 0.06),
    ("disposable", 0.08),
    ("role", 0.06),
    ("dormant", 0.12),
]
# Per persona: chance to open an email, to click once opened, chance of a pricing visit per week.
ENGAGEMENT: dict[str, tuple[float, float, float]] = {
    "decision_maker": (0.65, 0.5, 0.45),
    "manager": (0.5, 0.35, 0.2),
    "individual": (0.35, 0.2, 0.05),
    "student": (0.45, 0.3, 0.02),
    "competitor": (0.5, 0.4, 0.35),
    "job_seeker": (0.2, 0.1, 0.0),
    "disposable": (0.0, 0.0, 0.0),
    "role": (0.1, 0.05, 0.0),
    "dormant": (0.05, 0.05, 0.0),
}
# Per persona: (fewest, most) visits to the website over the scenario, the pages a visit reads
# (after its landing page), and (shortest, longest) engaged seconds on one page.
WEBSITE: dict[str, tuple[tuple[int, int], tuple[str, ...], tuple[int, int]]] = {
    "decision_maker": (
        (1, 4),
        ("/pricing", "/product", "/features/scoring", "/customers", "/docs/api"),
        (10, 240),
    ),
    "manager": ((1, 3), ("/product", "/features/alerts", "/pricing", "/blog/lead-scoring-101"), (10, 180)),
    "individual": ((1, 2), ("/blog/lead-scoring-101", "/docs/getting-started", "/product"), (5, 120)),
    "student": ((1, 2), ("/blog/lead-scoring-101", "/docs/getting-started"), (5, 60)),
    "competitor": ((1, 3), ("/pricing", "/product", "/features/scoring", "/docs/api"), (20, 300)),
    "job_seeker": ((1, 2), ("/careers/account-executive", "/jobs", "/customers"), (20, 240)),
    "disposable": ((0, 0), (), (1, 1)),
    "role": ((0, 1), ("/product",), (5, 60)),
    "dormant": ((0, 1), ("/blog/lead-scoring-101",), (5, 60)),
}
LANDING_PAGES = ("/", "/product", "/blog/lead-scoring-101")
UTM_SOURCES = ("google", "linkedin", "newsletter", "direct")
HOSTILE_KINDS = (
    "bad_signature",
    "stale_timestamp",
    "truncated_json",
    "oversized_body",
    "wrong_content_type",
    "unknown_provider",
    "honeypot",
    "bad_site_token",
    "sendgrid_bad_signature",
    "typeform_bad_signature",
    "forged_unsubscribe",
)


@dataclass(frozen=True)
class Lead:
    email: str
    first_name: str
    last_name: str
    persona: Persona
    job_title: str | None
    company: str | None
    company_size: int | None
    industry: str | None
    country: str | None

    def attributes(self) -> dict[str, Any]:
        values = {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "job_title": self.job_title,
            "company": self.company,
            "company_size": self.company_size,
            "industry": self.industry,
            "country": self.country,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Step:
    """One delivery to the stack at simulated time `at`.

    kind: generic | typeform | html | sendgrid (a batch) | ses (one SNS publish) | hostile.
    `duplicate` marks a re-delivery of an earlier step (same provider dedup key)."""

    at: datetime
    kind: Literal["generic", "typeform", "html", "sendgrid", "ses", "hostile"]
    payload: Any
    key: str = ""  # generic: webhook-id; html: content type; hostile: the kind
    duplicate: bool = False


@dataclass
class Scenario:
    now: datetime
    start: datetime
    leads: list[Lead]
    steps: list[Step] = field(default_factory=list)

    def days(self) -> Iterator[tuple[datetime, list[Step]]]:
        """Steps grouped by simulated day (day end, steps in time order)."""
        ordered = sorted(self.steps, key=lambda s: s.at)
        day_start = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        index = 0
        while day_start <= self.now:
            day_end = min(day_start + timedelta(days=1), self.now)
            batch: list[Step] = []
            while index < len(ordered) and ordered[index].at < day_end:
                batch.append(ordered[index])
                index += 1
            yield day_end, batch
            day_start += timedelta(days=1)
        if index < len(ordered):
            yield self.now, ordered[index:]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Builder:
    def __init__(self, seed: int, count: int, now: datetime, days: int) -> None:
        self.rng = random.Random(seed)
        self.now = now.astimezone(UTC).replace(microsecond=0)
        self.start = self.now - timedelta(days=days)
        self.days = days
        self.scenario = Scenario(now=self.now, start=self.start, leads=[])
        self.count = count
        self.suppressed: set[str] = set()
        self.arrivals: dict[str, datetime] = {}

    def uid(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128)).hex

    def moment(self, low: float, high: float) -> datetime:
        """A time between `low` and `high` days after the start, during working hours mostly."""
        day = self.rng.uniform(low, high)
        moment = self.start + timedelta(days=day)
        return min(moment, self.now - timedelta(minutes=1))

    # ------------------------------------------------------------------------------- people
    def make_lead(self, index: int, persona: Persona) -> Lead:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"{first}.{last}{index}".lower()
        title: str | None
        if persona in ("decision_maker", "manager", "individual", "competitor"):
            pool = (
                COMPETITORS
                if persona == "competitor"
                else TARGETS
                if persona != "individual" or rng.random() < 0.5
                else SMALL
            )
            company, domain, size, industry, country = rng.choice(pool)
            if persona == "manager" and rng.random() < 0.4:
                company, domain, size, industry, country = rng.choice(SMALL)
            return Lead(
                f"{local}@{domain}",
                first,
                last,
                persona,
                rng.choice(TITLES[persona]),
                company,
                size,
                industry,
                country,
            )
        if persona == "student":
            title = rng.choice(TITLES["student"])
            return Lead(
                f"{local}@{rng.choice(FREE)}",
                first,
                last,
                persona,
                title,
                "State University",
                None,
                "Education",
                rng.choice(["US", "IN", "DE", "BR"]),
            )
        if persona == "job_seeker":
            return Lead(
                f"{local}@{rng.choice(FREE)}",
                first,
                last,
                persona,
                rng.choice(TITLES[persona]),
                None,
                None,
                None,
                rng.choice(["US", "GB", "NG"]),
            )
        if persona == "disposable":
            return Lead(
                f"{local[:6]}{index}@{rng.choice(DISPOSABLE)}",
                first,
                last,
                persona,
                None,
                None,
                None,
                None,
                None,
            )
        if persona == "role":
            company, domain, size, industry, country = rng.choice(TARGETS + SMALL)
            prefix = rng.choice(["info", "sales", "contact", "hello", "marketing", "office"])
            return Lead(f"{prefix}@{domain}", first, last, persona, None, company, size, industry, country)
        company, domain, size, industry, country = rng.choice(TARGETS + SMALL)
        return Lead(
            f"{local}@{domain}",
            first,
            last,
            persona,
            rng.choice(TITLES["individual"] + TITLES["manager"]),
            company,
            size,
            industry,
            country,
        )

    def people(self) -> None:
        personas = [p for p, _ in MIX]
        weights = [w for _, w in MIX]
        seen: set[str] = set()
        index = 0
        while len(self.scenario.leads) < self.count:
            index += 1
            lead = self.make_lead(index, self.rng.choices(personas, weights)[0])
            if lead.email in seen:
                continue
            seen.add(lead.email)
            self.scenario.leads.append(lead)

    # ------------------------------------------------------------------------------- forms
    def generic(self, lead: Lead, at: datetime, event: str, url: str | None, with_attributes: bool) -> None:
        payload: dict[str, Any] = {"email": lead.email, "event": event, "occurred_at": _iso(at)}
        if url:
            payload["url"] = url
        if with_attributes:
            payload["attributes"] = {
                **lead.attributes(),
                "utm_source": self.rng.choice(["google", "linkedin", "newsletter", "direct"]),
            }
        msg_id = f"msg_{self.uid()[:24]}"
        self.scenario.steps.append(Step(at, "generic", payload, msg_id))
        if self.rng.random() < 0.04:  # the sender retried (timeout on its side): same webhook-id
            self.scenario.steps.append(
                Step(at + timedelta(minutes=5), "generic", payload, msg_id, duplicate=True)
            )

    def typeform(self, lead: Lead, at: datetime, form_id: str) -> None:
        token = self.uid()
        answers: list[dict[str, Any]] = [
            {
                "type": "email",
                "email": lead.email,
                "field": {"id": "Hk3bQ0pZ1yZt", "ref": "work_email", "type": "email"},
            },
            {
                "type": "text",
                "text": lead.first_name,
                "field": {"id": "Lp5xR2vTq8Wd", "ref": "first_name", "type": "short_text"},
            },
        ]
        if lead.company:
            answers.append(
                {
                    "type": "text",
                    "text": lead.company,
                    "field": {"id": "Vn7cK4mJs2Fe", "ref": "company", "type": "short_text"},
                }
            )
        if lead.job_title:
            answers.append(
                {
                    "type": "choice",
                    "choice": {"label": lead.job_title},
                    "field": {"id": "Ty2dF8kLp6Hs", "ref": "role", "type": "dropdown"},
                }
            )
        if lead.company_size:
            answers.append(
                {
                    "type": "number",
                    "number": lead.company_size,
                    "field": {"id": "Qz9wB6nHt4Gr", "ref": "company_size", "type": "number"},
                }
            )
        payload = {
            "event_id": self.uid()[:26].upper(),
            "event_type": "form_response",
            "form_response": {
                "form_id": form_id,
                "token": token,
                "landed_at": _iso(at - timedelta(minutes=2)),
                "submitted_at": _iso(at),
                "hidden": {"utm_source": "google", "country": lead.country or ""},
                "definition": {
                    "id": form_id,
                    "title": "Talk to sales" if form_id == DEMO_FORM_ID else "Newsletter",
                },
                "answers": answers,
            },
        }
        self.scenario.steps.append(Step(at, "typeform", payload))
        if self.rng.random() < 0.05:
            self.scenario.steps.append(Step(at + timedelta(minutes=1), "typeform", payload, duplicate=True))

    def html(self, lead: Lead, intent: str, multipart: bool) -> None:
        fields = {
            "_site": HTML_SITE_ID,
            "_token": "st_local_test_token",
            "_event": intent,
            "email": lead.email,
            **{k: str(v) for k, v in lead.attributes().items()},
            "message": "Could you send us pricing for our team?",
            "website_url": "",
        }
        at = self.now - timedelta(minutes=self.rng.randint(5, 600))
        self.scenario.steps.append(Step(at, "html", fields, "multipart" if multipart else "urlencoded"))

    # ------------------------------------------------------------------------------- journeys
    def journeys(self) -> None:
        for lead in self.scenario.leads:
            arrival = self.moment(0, self.days - 3) if lead.persona != "dormant" else self.moment(0, 8)
            self.arrivals[lead.email] = arrival
            first_touch = self.rng.random()
            if lead.persona in ("decision_maker", "manager") and first_touch < 0.3:
                self.typeform(lead, arrival, NEWSLETTER_FORM_ID)
            else:
                event = self.rng.choice(["content_downloaded", "form_submitted", "webinar_registered"])
                url = {
                    "content_downloaded": f"{SITE}/ebooks/lead-scoring-guide",
                    "webinar_registered": f"{SITE}/webinars/scoring-101",
                }.get(event)
                self.generic(lead, arrival, event, url, with_attributes=True)
            _, _, pricing_weekly = ENGAGEMENT[lead.persona]
            remaining = (self.now - arrival).days
            for week in range(max(1, remaining // 7)):
                if self.rng.random() < pricing_weekly:
                    at = arrival + timedelta(days=week * 7 + self.rng.uniform(0.5, 6.5))
                    if at < self.now:
                        self.generic(lead, at, "page_viewed", f"{SITE}/pricing", with_attributes=False)
                if self.rng.random() < pricing_weekly:
                    at = arrival + timedelta(days=week * 7 + self.rng.uniform(0.5, 6.5))
                    if at < self.now:
                        page = self.rng.choice(
                            ["/product", "/integrations", "/customers", "/blog/lead-scoring-101"]
                        )
                        self.generic(lead, at, "page_viewed", f"{SITE}{page}", with_attributes=False)
            if lead.persona == "job_seeker":
                self.generic(
                    lead,
                    arrival + timedelta(hours=3),
                    "page_viewed",
                    f"{SITE}/careers/account-executive",
                    with_attributes=False,
                )
            if lead.persona == "decision_maker" and self.rng.random() < 0.55:
                at = self.moment((arrival - self.start).days + 1, self.days)
                if self.rng.random() < 0.5:
                    self.typeform(lead, at, DEMO_FORM_ID)
                else:
                    self.generic(lead, at, "demo_requested", f"{SITE}/demo", with_attributes=False)
            if lead.persona in ("decision_maker", "manager") and self.rng.random() < 0.3:
                at = self.moment((arrival - self.start).days, self.days)
                self.generic(
                    lead, at, "webinar_attended", f"{SITE}/webinars/scoring-101", with_attributes=False
                )
            if lead.persona in ("decision_maker", "manager") and self.rng.random() < 0.12:
                self.html(lead, "contact sales", multipart=self.rng.random() < 0.5)

    # ------------------------------------------------------------------------------- website
    def website(self, seed: int) -> None:
        """Each lead's visits to the website, as the tracking snippet reports them: a visit
        (visit_started for a browser's first, visit_returned after), page views, and engaged time
        on each page read (page_engaged). The first visit comes just before the lead's first form;
        the others spread over the weeks after. Sent through the signed generic provider, one
        batch per visit when it ends. A separate random stream: the rest stays what it was."""
        rng = random.Random(seed * 104_729 + 3)
        for lead in self.scenario.leads:
            (fewest, most), pages, seconds = WEBSITE[lead.persona]
            visits = rng.randint(fewest, most)
            arrival = self.arrivals[lead.email]
            for number in range(visits):
                if number == 0:
                    start = arrival - timedelta(minutes=rng.randint(20, 90))
                else:
                    start = arrival + timedelta(days=rng.uniform(0.5, max((self.now - arrival).days, 1)))
                self.visit(lead, rng, start, returning=number > 0, pages=pages, seconds=seconds)

    def visit(
        self,
        lead: Lead,
        rng: random.Random,
        start: datetime,
        *,
        returning: bool,
        pages: tuple[str, ...],
        seconds: tuple[int, int],
    ) -> None:
        read = [rng.choice(LANDING_PAGES), *rng.sample(pages, rng.randint(0, min(2, len(pages))))]
        landing = f"{SITE}{read[0]}"
        source = rng.choice(UTM_SOURCES)
        events: list[dict[str, Any]] = [
            {
                "email": lead.email,
                "event": "visit_returned" if returning else "visit_started",
                "occurred_at": _iso(start),
                "url": landing,
                "attributes": {
                    "utm_source": source,
                    "utm_medium": "organic" if source == "google" else source,
                },
            }
        ]
        moment = start
        for page in read:
            url = f"{SITE}{page}"
            events.append(
                {"email": lead.email, "event": "page_viewed", "occurred_at": _iso(moment), "url": url}
            )
            engaged = rng.randint(*seconds)
            moment += timedelta(seconds=engaged + rng.randint(2, 40))
            events.append(
                {
                    "email": lead.email,
                    "event": "page_engaged",
                    "occurred_at": _iso(moment),
                    "url": url,
                    "engaged_seconds": engaged,
                }
            )
        ended = moment + timedelta(seconds=1)
        if ended >= self.now:
            return  # still on the site: reported once the visit ends, after the demo
        msg_id = f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex[:24]}"
        self.scenario.steps.append(Step(ended, "generic", {"events": events}, msg_id))

    def customers(self, seed: int) -> None:
        """Some decision makers and managers at target companies became customers early on (a deal
        won, sent by the CRM through the signed generic provider); some of them now look at
        upgrades, pricing and book calls: the expansion model's leads. A separate random stream,
        so the rest of the scenario stays what it was."""
        rng = random.Random(seed * 7919 + 1)
        for lead in self.scenario.leads:
            if lead.persona not in ("decision_maker", "manager") or rng.random() > 0.25:
                continue
            arrival = self.arrivals[lead.email]
            won = arrival + timedelta(days=rng.uniform(1, 10))
            if won >= self.now - timedelta(days=2):
                continue
            self.generic(lead, won, "deal_won", None, with_attributes=False)
            if rng.random() < 0.6:
                for page in ("/upgrade/seats", "/pricing", "/upgrade/add-ons"):
                    at = won + timedelta(days=rng.uniform(1, (self.now - won).days or 1))
                    if at < self.now and rng.random() < 0.7:
                        self.generic(lead, at, "page_viewed", f"{SITE}{page}", with_attributes=False)
                if rng.random() < 0.5:
                    at = min(self.now - timedelta(hours=2), won + timedelta(days=rng.uniform(2, 20)))
                    self.generic(lead, at, "meeting_booked", None, with_attributes=False)

    # ------------------------------------------------------------------------------- email
    def recipients(self, at: datetime) -> list[Lead]:
        return [
            lead
            for lead in self.scenario.leads
            if self.arrivals[lead.email] < at and lead.email not in self.suppressed
        ]

    def sendgrid_campaign(self, day: float, name: str) -> None:
        sent = self.start + timedelta(days=day, hours=9)
        events: list[dict[str, Any]] = []
        for lead in self.recipients(sent):
            message_id = f"{self.uid()[:22]}.recvd-{name}"
            t = int((sent + timedelta(seconds=self.rng.randint(0, 900))).timestamp())

            def event(
                kind: str,
                offset: int,
                lead: Lead = lead,
                message_id: str = message_id,
                t: int = t,
                **extra: Any,
            ) -> None:
                events.append(
                    {
                        "email": lead.email,
                        "timestamp": t + offset,
                        "event": kind,
                        "sg_event_id": self.uid()[:22],
                        "sg_message_id": message_id,
                        "category": [name],
                        **extra,
                    }
                )

            if lead.persona == "disposable" or (lead.persona == "dormant" and self.rng.random() < 0.15):
                event(
                    "bounce",
                    5,
                    type="bounce",
                    reason="550 5.1.1 The email account that you tried to reach does not exist",
                    status="5.1.1",
                )
                self.suppressed.add(lead.email)
                continue
            event("delivered", 3, response="250 2.0.0 OK")
            if self.rng.random() < 0.25:  # Apple Mail Privacy Protection prefetch: not engagement
                event("open", 60, sg_machine_open=True)
            opens, clicks, _ = ENGAGEMENT[lead.persona]
            if self.rng.random() < opens:
                event("open", self.rng.randint(300, 86_400), sg_machine_open=False, useragent="Mozilla/5.0")
                if self.rng.random() < clicks:
                    link = self.rng.choice(
                        [f"{SITE}/pricing", f"{SITE}/blog/lead-scoring-101", f"{SITE}/webinars/scoring-101"]
                    )
                    event("click", self.rng.randint(90_000, 100_000), url=link)
            if self.rng.random() < (0.1 if lead.persona in ("dormant", "student") else 0.02):
                event("unsubscribe", 120_000)
                self.suppressed.add(lead.email)
            elif self.rng.random() < (0.08 if lead.persona == "role" else 0.004):
                event("spamreport", 130_000)
                self.suppressed.add(lead.email)
        events.sort(key=lambda e: e["timestamp"])
        for start in range(0, len(events), 100):  # SendGrid posts batches of events
            batch = events[start : start + 100]
            at = datetime.fromtimestamp(batch[-1]["timestamp"], UTC)
            if at >= self.now:
                continue
            self.scenario.steps.append(Step(at, "sendgrid", batch))
            if self.rng.random() < 0.1:  # no 2xx seen in time: SendGrid re-posts the whole batch
                self.scenario.steps.append(
                    Step(at + timedelta(minutes=10), "sendgrid", batch, duplicate=True)
                )

    def ses_campaign(self, day: float, campaign: str) -> None:
        sent = self.start + timedelta(days=day, hours=14)
        for lead in self.recipients(sent):
            mail = {
                "timestamp": _iso_ms(sent),
                "source": "LeadScore <hello@mail.leadscore.example>",
                "sendingAccountId": "123456789012",
                "messageId": f"0100018e{self.uid()[:24]}-000000",
                "destination": [lead.email],
                "tags": {"ses:configuration-set": ["leadscore-events"], "campaign": [campaign]},
            }

            def publish(record: dict[str, Any], at: datetime) -> None:
                if at >= self.now:
                    return
                self.scenario.steps.append(Step(at, "ses", record))
                if self.rng.random() < 0.03:  # SNS delivers at least once
                    self.scenario.steps.append(
                        Step(at + timedelta(seconds=30), "ses", record, duplicate=True)
                    )

            delivered = sent + timedelta(seconds=2)
            if lead.persona == "disposable":
                bounce = {
                    "bounceType": "Permanent",
                    "bounceSubType": "General",
                    "timestamp": _iso_ms(delivered),
                    "bouncedRecipients": [{"emailAddress": lead.email, "status": "5.1.1"}],
                }
                publish({"eventType": "Bounce", "bounce": bounce, "mail": mail}, delivered)
                self.suppressed.add(lead.email)
                continue
            publish(
                {
                    "eventType": "Delivery",
                    "mail": mail,
                    "delivery": {"timestamp": _iso_ms(delivered), "recipients": [lead.email]},
                },
                delivered,
            )
            opens, clicks, _ = ENGAGEMENT[lead.persona]
            if self.rng.random() < opens:
                opened = delivered + timedelta(minutes=self.rng.randint(10, 2000))
                publish(
                    {
                        "eventType": "Open",
                        "mail": mail,
                        "open": {
                            "timestamp": _iso_ms(opened),
                            "ipAddress": "198.51.100.23",
                            "userAgent": "Mozilla/5.0",
                        },
                    },
                    opened,
                )
                if self.rng.random() < clicks:
                    clicked = opened + timedelta(minutes=2)
                    link = self.rng.choice(
                        [f"{SITE}/pricing", f"{SITE}/customers", f"{SITE}/webinars/scoring-101"]
                    )
                    publish(
                        {
                            "eventType": "Click",
                            "mail": mail,
                            "click": {
                                "timestamp": _iso_ms(clicked),
                                "link": link,
                                "ipAddress": "198.51.100.23",
                            },
                        },
                        clicked,
                    )
            if lead.persona == "role" and self.rng.random() < 0.1:
                complaint = {
                    "timestamp": _iso_ms(delivered + timedelta(hours=3)),
                    "complainedRecipients": [{"emailAddress": lead.email}],
                    "complaintFeedbackType": "abuse",
                }
                publish(
                    {"eventType": "Complaint", "mail": mail, "complaint": complaint},
                    delivered + timedelta(hours=3),
                )
                self.suppressed.add(lead.email)

    def email(self) -> None:
        for number, day in enumerate(range(12, self.days, 21), start=1):
            self.sendgrid_campaign(day, f"newsletter-{number}")
        for number, day in enumerate(range(22, self.days, 21), start=1):
            self.ses_campaign(day, f"trial-nurture-{number}")

    # ------------------------------------------------------------------------------- hostile
    def hostile(self) -> None:
        for round_ in range(2):
            for number, kind in enumerate(HOSTILE_KINDS):
                at = self.moment(1 + round_ * 25 + number, 2 + round_ * 25 + number)
                email = f"intruder.{kind.replace('_', '-')}.{round_}@intruder.example"
                self.scenario.steps.append(
                    Step(at, "hostile", {"email": email, "event": "demo_requested"}, kind)
                )


def build(seed: int = 7, leads: int = 200, now: datetime | None = None, days: int = 60) -> Scenario:
    """The scenario for `seed` (same seed and `now`, same scenario)."""
    builder = _Builder(seed, leads, now or datetime.now(UTC), days)
    builder.people()
    builder.journeys()
    builder.customers(seed)
    builder.website(seed)
    builder.email()
    builder.hostile()
    builder.scenario.steps.sort(key=lambda s: s.at)
    return builder.scenario


def urlencoded(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def multipart(fields: dict[str, str], boundary: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()
