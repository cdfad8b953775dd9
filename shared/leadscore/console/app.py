"""The console's web app: read-only pages over the lead API, served on loopback.

Security model (it holds its user's AWS credentials, so a web page must not be able to use it):
- it listens on 127.0.0.1 only, and answers only requests whose Host header names it
  (`TRUSTED_HOSTS`): a DNS-rebinding page whose name resolves to 127.0.0.1 gets a 400;
- loopback is shared by every user and program of the machine, so when it signs with the user's
  own credentials (a deployed stack) a page answers only a browser holding the console's token: a
  random secret in the URL it prints, exchanged on first visit for an HttpOnly, SameSite=Strict
  cookie (as Jupyter does); anything else gets a 401 and the lead API is never read. A local or
  demo stack (fake credentials, its own API open on loopback already) needs no token;
- GET (and HEAD) only: nothing it serves changes anything (no erase, no form posts);
- every page carries a strict Content-Security-Policy (no script at all: the chart is drawn on the
  server as SVG; `frame-ancestors 'none'`), and templates autoescape every value, so a webhook's
  `<img src=x onerror=alert(1)>` in a name renders as text, in tooltips too;
- the backtest report (HTML written by `leadscore backtest --report`) is shown in a sandboxed
  frame, served with its own `sandbox` policy.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, redirect, render_template, request, send_file, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import HTTPException, SecurityError

from leadscore.console import chart
from leadscore.console.api import ApiError, LeadApi
from leadscore.domain import LEAD_ID_PATTERN
from leadscore.errors import describe_validation
from leadscore.leads import LeadDetail, LeadPage
from leadscore.score_history import LeadHistory

PAGE_SIZE = 50
API_LIMIT = 100  # the lead API's largest page
GRADE_SCAN_PAGES = 10  # a grade filter reads at most this many API pages per console page
MODELS_TTL_SECONDS = 300
LEAD_ID = re.compile(LEAD_ID_PATTERN)
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The report is someone's HTML (inline styles, data: images): inert, in a sandbox of its own.
REPORT_POLICY = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
)


@dataclass
class Console:
    api: LeadApi
    reports: Path | None = None  # where backtest reports are written (newest one shown)
    _models: tuple[float, dict[str, Any] | None, str | None] | None = field(default=None, repr=False)

    def catalog(self) -> tuple[dict[str, Any] | None, str | None]:
        """GET /v1/models (cached): the catalog, or None and why not."""
        now = time.monotonic()
        if self._models is None or now - self._models[0] > MODELS_TTL_SECONDS:
            try:
                self._models = (now, self.api.get("/v1/models"), None)
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                self._models = (now, None, f"the lead API has no model route ({exc.status}: {exc})")
        return self._models[1], self._models[2]


class ListQuery(BaseModel):
    """The leads page's query string: one model's stage, optionally narrowed to one grade."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,32}$")
    stage: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
    grade: str | None = Field(default=None, max_length=8)
    email: str | None = Field(default=None, max_length=254)
    cursor: str | None = Field(default=None, max_length=2048)
    start: int = Field(default=1, ge=1, le=10_000_000)


TOKEN_COOKIE = "leadscore_console"
TOKEN_PARAMETER = "token"


def create_app(console: Console, allowed_hosts: list[str], token: str | None) -> Flask:
    """The console app; with a `token`, every request must carry it (the printed URL's, or its
    cookie). None only for a local stack, whose lead API any local program can read anyway."""
    if token is not None and len(token) < 16:
        raise ValueError("the console's token must be a long random secret")
    app = Flask(__name__)
    app.config["TRUSTED_HOSTS"] = allowed_hosts
    app.jinja_env.autoescape = True  # every template, whatever its name
    app.jinja_env.globals["source"] = console.api.target.label
    app.jinja_env.filters["timestamp"] = lambda seconds: (
        f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M} UTC"
    )
    _guard(app)
    if token is not None:
        _token_gate(app, token)
    _pages(app, console)
    return app


def _token_gate(app: Flask, token: str) -> None:
    """Only the browser that opened the printed URL: its `?token=` becomes a cookie (and leaves the
    address bar, so it is not in history or a Referer), the cookie opens every later request."""

    def holds(value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), token.encode())

    @app.before_request
    def _check_token() -> Any:
        _ = request.host  # a Host the console does not trust raises SecurityError first (a 400)
        if holds(request.args.get(TOKEN_PARAMETER)):
            values: dict[str, Any] = dict(request.view_args or {})
            values.update((k, v) for k, v in request.args.items() if k != TOKEN_PARAMETER)
            response = redirect(url_for(request.endpoint or "home", **values))
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
            return response
        if not holds(request.cookies.get(TOKEN_COOKIE)):
            message = "open the console at the address `leadscore console` printed: it carries the token"
            return render_template("error.html", status=401, message=message), 401
        return None


def _guard(app: Flask) -> None:
    """Security headers on every answer, and every error as a page that names the problem."""

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"  # pages hold personal data
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[str, int]:
        status = exc.status if 400 <= exc.status < 600 else 502
        return render_template("error.html", status=status, message=exc.message), status

    @app.errorhandler(SecurityError)
    def _foreign_host(exc: SecurityError) -> Response:
        # Not the console's own name (DNS rebinding): a bare answer, no page (its links need the Host).
        return Response(
            "Host not allowed: open the console at its own address, http://127.0.0.1:PORT/\n",
            400,
            mimetype="text/plain",
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[str, int]:
        status = exc.code or 500
        return render_template("error.html", status=status, message=exc.description), status


def _pages(app: Flask, console: Console) -> None:
    @app.get("/")
    def home() -> Any:
        return redirect(url_for("leads"))

    @app.get("/leads")
    def leads() -> Any:
        try:
            query = ListQuery.model_validate(request.args.to_dict())
        except ValidationError as exc:
            abort(400, describe_validation(exc, "query"))
        if query.email:
            found = console.api.get("/v1/leads", {"email": query.email})
            return redirect(url_for("lead", lead_id=found["lead_id"]))
        catalog, missing = console.catalog()
        models = catalog["models"] if catalog else []
        model = next((m for m in models if m["id"] == query.model), models[0] if models else None)
        if query.model and (model is None or model["id"] != query.model):
            abort(400, f"model: no model {query.model!r} in the catalog")
        stages = [s["name"] for s in model["model"]["stages"]] if model else []
        grades = [g["grade"] for g in model["model"]["grades"]] if model else []
        stage = query.stage or (stages[-1] if stages else None)
        if stage is None:
            abort(400, f"stage: {missing}, so its stages are unknown: open /leads?stage=NAME")
        if stages and stage not in stages:
            abort(400, f"stage: {stage!r} is not a stage of the model (its stages: {', '.join(stages)})")
        api_model = None if model is None or model["primary"] else model["id"]
        items, next_cursor = _page(console.api, api_model, stage, query.grade, query.cursor)
        return render_template(
            "leads.html",
            models=models,
            model=model,
            stages=stages,
            grades=grades,
            query=query,
            stage=stage,
            items=items,
            next_cursor=next_cursor,
            catalog_missing=missing,
        )

    @app.get("/leads/<lead_id>")
    def lead(lead_id: str) -> Any:
        if not LEAD_ID.fullmatch(lead_id):
            abort(400, "lead id: expected ld_ followed by 24 hexadecimal digits")
        detail = LeadDetail.model_validate(console.api.get(f"/v1/leads/{lead_id}"))
        history, history_missing = _history(console.api, lead_id)
        catalog, _ = console.catalog()
        primary = catalog["models"][0]["model"] if catalog else None
        return render_template(
            "lead.html",
            lead=detail,
            history=history,
            history_missing=history_missing,
            chart=chart.build(history) if history else None,
            topics=_topics(primary),
        )

    @app.get("/models")
    def models() -> Any:
        catalog, missing = console.catalog()
        return render_template("models.html", catalog=catalog, missing=missing)

    @app.get("/backtest")
    def backtest() -> Any:
        report = _newest_report(console.reports)
        return render_template("backtest.html", report=report, folder=console.reports)

    @app.get("/backtest/report")
    def backtest_report() -> Any:
        report = _newest_report(console.reports)
        if report is None:
            abort(404, "no backtest report")
        response = send_file(report, mimetype="text/html", max_age=0)
        response.headers["Content-Security-Policy"] = REPORT_POLICY
        return response


def _page(
    api: LeadApi, model: str | None, stage: str, grade: str | None, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One console page of a stage's ranking: one API page, or with a grade, the matching leads of
    up to GRADE_SCAN_PAGES API pages (the API filters by stage only; never the whole stage)."""
    if not grade:
        answer = LeadPage.model_validate(
            api.get("/v1/leads", {"stage": stage, "model": model, "limit": PAGE_SIZE, "cursor": cursor})
        )
        return [item.model_dump() for item in answer.items], answer.next_cursor
    found: list[dict[str, Any]] = []
    for _ in range(GRADE_SCAN_PAGES):
        answer = LeadPage.model_validate(
            api.get("/v1/leads", {"stage": stage, "model": model, "limit": API_LIMIT, "cursor": cursor})
        )
        found.extend(item.model_dump() for item in answer.items if item.grade == grade)
        cursor = answer.next_cursor
        if cursor is None or len(found) >= PAGE_SIZE:
            break
    return found, cursor


def _history(api: LeadApi, lead_id: str) -> tuple[LeadHistory | None, str | None]:
    try:
        return LeadHistory.model_validate(api.get(f"/v1/leads/{lead_id}/history")), None
    except ApiError as exc:
        if exc.status >= 500:
            raise
        return None, f"{exc.status}: {exc.message}"


def _topics(model: dict[str, Any] | None) -> dict[tuple[str, str], str]:
    """(from stage, to stage) -> the topic the change is announced on, from the model's stage
    actions: a promotion on the entered stage's `on_enter`, a demotion on the left one's `on_exit`."""
    if model is None:
        return {}
    stages = model["stages"]
    topics: dict[tuple[str, str], str] = {}
    for i, low in enumerate(stages):
        for high in stages[i + 1 :]:
            if high.get("on_enter"):
                topics[(low["name"], high["name"])] = high["on_enter"]
            if high.get("on_exit"):
                topics[(high["name"], low["name"])] = high["on_exit"]
    return topics


def _newest_report(folder: Path | None) -> Path | None:
    if folder is None or not folder.is_dir():
        return None
    reports = [p for p in folder.glob("*.html") if p.is_file()]
    return max(reports, key=lambda p: p.stat().st_mtime, default=None)


LOOPBACK = "127.0.0.1"


def serve(console: Console, port: int, token: str | None) -> Any:
    """A threaded WSGI server for the console on 127.0.0.1:`port` (0: a free one), not started:
    call `serve_forever()` (and `shutdown()`). Its URL: `http://127.0.0.1:{server.port}/?token=…`."""
    from werkzeug.serving import make_server

    app = create_app(console, allowed_hosts=[LOOPBACK, "localhost"], token=token)
    return make_server(LOOPBACK, port, app, threaded=True)


def new_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)
