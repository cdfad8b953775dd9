"""The clients and stores every use case reaches through, created on first use and reused for the
container's life. Ingest (`leadscore.ingest`) needs only the ledger, identities and network ports:
the scoring side (catalog, profiles, notifier) is imported the first time it is asked for, so an
ingest Lambda never loads the scoring engine, YAML or notifications."""

from __future__ import annotations

from functools import cache, cached_property
from typing import TYPE_CHECKING

from leadscore.config import ConfigurationError, Settings
from leadscore.ports import NetworkPorts
from leadscore.repository.identities import IdentityStore
from leadscore.repository.ledger import EventLedger

if TYPE_CHECKING:
    from leadscore.notifications import Notifier
    from leadscore.repository.identity import IdentityMerges
    from leadscore.repository.profiles import LeadProfiles
    from leadscore.repository.ranks import LeadRanks
    from leadscore.scoring.catalog import Catalog
    from leadscore.scoring.model import ScoringModel


class Services:
    """Clients, created on first use and reused for the container's life. The model is read on
    every access (cached by the model store; S3/SSM models are re-read after their TTL), so a
    newly published model is picked up without a redeploy; ingestion never needs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def catalog(self) -> Catalog:
        """Every model the deployment scores with (a single model is a one-model catalog)."""
        from leadscore.model_store import load_catalog

        return load_catalog(self.settings.scoring_model)

    @property
    def model(self) -> ScoringModel:
        """The catalog's primary model."""
        return self.catalog.primary.model

    @cached_property
    def ranks(self) -> LeadRanks:
        """The rankings of the catalog's models other than the primary one."""
        from leadscore.repository.ranks import LeadRanks

        if not self.settings.ranks_table:
            raise ConfigurationError("RANKS_TABLE is not set, but the catalog ranks more than one model")
        return LeadRanks(self.settings.ranks_table)

    @cached_property
    def ledger(self) -> EventLedger:
        return EventLedger(self.settings.ledger_table, self.settings.event_retention_days)

    @property
    def profiles(self) -> LeadProfiles:
        return _profiles(self.settings, self.model.initial_stage, self.ledger)

    @property
    def identity(self) -> IdentityMerges:
        from leadscore.repository.identity import IdentityMerges

        return IdentityMerges(self.profiles)

    @cached_property
    def notifier(self) -> Notifier:
        from leadscore.notifications import Notifier

        return Notifier(self.settings)

    @cached_property
    def identities(self) -> IdentityStore:
        if not self.settings.identity_table:
            raise ConfigurationError("IDENTITY_TABLE is not set, but a provider names people by its own ids")
        return IdentityStore(self.settings.identity_table, self.settings.event_retention_days)

    @cached_property
    def ports(self) -> NetworkPorts:
        return NetworkPorts()


@cache
def _profiles(settings: Settings, initial_stage: str, ledger: EventLedger) -> LeadProfiles:
    from leadscore.repository.profiles import LeadProfiles

    return LeadProfiles(
        settings.profiles_table,
        initial_stage,
        settings.review_shards,
        ledger,
        ranks_table=settings.ranks_table,
    )


@cache
def _services(settings: Settings) -> Services:
    return Services(settings)


def services(settings: Settings | None = None) -> Services:
    return _services(settings or Settings.from_env())


def reset() -> None:
    """Forget cached clients and settings (tests that start a fresh AWS emulator call this)."""
    from leadscore import accounts, subscriptions

    _services.cache_clear()
    _profiles.cache_clear()
    subscriptions.reset()
    accounts.reset()
