"""The account part of a catalog (`accounts:`): how an account's score is made from its members.

Data only (pydantic, no I/O); the pure functions that apply it are in `leadscore.scoring.accounts`.
A catalog without `accounts:` has no accounts, and nothing about leads changes.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

from pydantic import Field, ValidationError, model_validator

from leadscore.domain import Provider
from leadscore.schema import Model
from leadscore.scoring.model import CACHED, Grade, ScoringModel, Stage

# The attributes that name a lead's account explicitly. Whoever can set them can put a lead in any
# company's account (and page that company's salesperson), so only trusted server-to-server sources
# may: the signed generic provider (a CRM, `outcomes import`) and HubSpot. Every public form and email
# provider's values are dropped (`scoring.catalog.effect_of`, the one place event attributes are kept).
ACCOUNT_ATTRIBUTES = frozenset({"account_id", "company_domain"})
ACCOUNT_SOURCES = frozenset({Provider.GENERIC, Provider.HUBSPOT})
MAX_MEMBERS_LIMIT = 400  # what `max_members` may be set to (the item bound is checked per catalog)


class _Strict(Model):
    model_config = CACHED


class FitPart(_Strict):
    """`weight` x the best fit among the account's members (fit does not change with time)."""

    weight: float = Field(default=1.0, ge=0)


class EngagementPart(_Strict):
    """`weight` x the sum of the `top` most engaged members' engagement at the moment of scoring
    (each member's decayed engagement, exactly as the feeding model scores that lead)."""

    top: int = Field(default=3, ge=1, le=20)
    weight: float = Field(default=1.0, ge=0)


class PeoplePart(_Strict):
    """`points` per distinct engaged member, at most `max` (the buying committee's size)."""

    points: float = Field(default=5.0, ge=0)
    max: float = Field(default=20.0, ge=0)


class RolesPart(_Strict):
    """Points per distinct role among the engaged members (a role: the value of `attribute`, derived
    ones included, e.g. seniority), at most `max`. Roles not listed are worth nothing."""

    attribute: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")] = "seniority"
    points: dict[str, float] = Field(default_factory=dict, max_length=50)
    max: float = Field(default=15.0, ge=0)

    @model_validator(mode="after")
    def _casefold(self) -> RolesPart:
        object.__setattr__(self, "points", {k.strip().casefold(): v for k, v in self.points.items()})
        return self


class AccountModel(_Strict):
    """How accounts are scored: from the members' fit and engagement under the catalog model `model`
    (default: the primary one). A member counts as engaged at `engaged_at` engagement or more.

    score = fit.weight * best member fit + engagement.weight * sum of the top members' engagement
          + min(people.max, people.points * engaged members)
          + min(roles.max, sum of roles.points over the engaged members' distinct roles),
    limited to [0, total_max]. Stages work like a lead's (enter / exit thresholds with hysteresis,
    on_enter / on_exit topics)."""

    model: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] | None = None
    engaged_at: float = 10.0
    fit: FitPart = Field(default_factory=FitPart)
    engagement: EngagementPart = Field(default_factory=EngagementPart)
    people: PeoplePart = Field(default_factory=PeoplePart)
    roles: RolesPart = Field(default_factory=RolesPart)
    total_max: float = Field(default=100.0, gt=0)
    stages: list[Stage] = Field(min_length=1, max_length=10)
    max_members: int = Field(default=100, ge=1, le=MAX_MEMBERS_LIMIT)

    @model_validator(mode="after")
    def _valid_stages(self) -> AccountModel:
        try:  # the same rules as a lead model's stages, with the same errors
            _ = self.stage_model
        except ValidationError as exc:
            raise ValueError("; ".join(str(error["msg"]) for error in exc.errors())) from None
        return self

    @cached_property
    def stage_model(self) -> ScoringModel:
        """The stages as a (rule-less) scoring model, so accounts move between stages with the very
        hysteresis leads do (`engine.next_stage`, `ScoringModel.is_promotion`)."""
        return ScoringModel(
            name="accounts",
            version="accounts",
            total_max=self.total_max,
            grades=[Grade(grade="-", min_fit=0)],
            stages=self.stages,
        )
