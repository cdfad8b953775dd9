"""Registry of webhook provider adapters.

Every public module of this package that defines a module-level `ADAPTER` is a provider, found by
`pkgutil` at first use: adding a provider is adding one module (plus its `Provider` name). A
provider's module bears its name, so a request imports that module alone: a cold start loads one
provider, not all of them (only listing the providers, for an error message, imports every one).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from typing import Any

from leadscore.adapters.base import (
    DEFAULT_RETRY_RULES,
    Adapter,
    Channel,
    Delivery,
    GuardedAdapter,
    ParsingAdapter,
    PendingEvent,
    Ports,
    ReadingAdapter,
    RetryRules,
    WebhookRequest,
)
from leadscore.domain import LeadEvent
from leadscore.errors import EventTypeNotAllowed, UnknownProvider
from leadscore.ports import network_ports

__all__ = [
    "Adapter",
    "Channel",
    "Delivery",
    "WebhookRequest",
    "get_adapter",
    "read_delivery",
    "retry_rules",
    "supported",
]


@cache
def _registry() -> dict[str, Adapter]:
    adapters: dict[str, Adapter] = {}
    for name in sorted(_modules()):
        adapter: Adapter | None = getattr(importlib.import_module(f"{__name__}.{name}"), "ADAPTER", None)
        if adapter is not None:
            adapters[adapter.name] = adapter
    return adapters


@cache
def _modules() -> frozenset[str]:
    """The provider modules' names (a directory listing: nothing is imported)."""
    return frozenset(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_") and info.name != "base"
    )


def _named(name: str) -> Adapter | None:
    """The adapter in the module named `name`, when that module is a provider of that name (the
    name comes from a URL: only a listed module's name is ever imported or cached)."""
    return _load(name) if name in _modules() else None


@cache
def _load(module_name: str) -> Adapter | None:
    adapter: Adapter | None = getattr(importlib.import_module(f"{__name__}.{module_name}"), "ADAPTER", None)
    return adapter if adapter is not None and adapter.name == module_name else None


def supported(channel: Channel) -> list[str]:
    """Provider names of one channel ('form' or 'email'), sorted."""
    return sorted(
        name for name, adapter in _registry().items() if adapter.channel == channel and not adapter.queue_only
    )


def get_adapter(name: str, channel: Channel, *, from_queue: bool = False) -> Adapter:
    """The adapter for `name` on `channel`; UnknownProvider (404) for anything else, so a form URL
    cannot be used to feed email events and vice versa, and a queue-only source (SES, which
    carries no signature) cannot be forged over the public HTTP route. `from_queue` is for routes
    AWS authenticates (a queue, an SNS -> Lambda subscription), never for a public request."""
    adapter = _named(name) or _registry().get(name)
    if adapter is not None and from_queue:
        # AWS itself delivers (SQS, SNS -> Lambda), authenticated by IAM: the provider's adapter for
        # that route checks no signature (SES's `trusted_route`), so it is never the public one.
        adapter = getattr(adapter, "trusted_route", adapter)
    if adapter is None or adapter.channel != channel or (adapter.queue_only and not from_queue):
        choices = ", ".join(supported(channel)) or "none"
        raise UnknownProvider(
            f"unknown {channel} provider {name[:40]!r}; supported {channel} providers: {choices}"
        )
    return adapter


def retry_rules(adapter: Adapter) -> RetryRules:
    rules: RetryRules = getattr(adapter, "retry", DEFAULT_RETRY_RULES)
    return rules


@cache
def _kind(adapter_type: type) -> type | None:
    """Which way an adapter class delivers, decided once per class (a runtime protocol check
    costs tens of microseconds a request)."""
    for protocol in (ReadingAdapter, GuardedAdapter, ParsingAdapter):
        if issubclass(adapter_type, protocol):
            return protocol
    return None


def read_delivery(
    adapter: Adapter, request: WebhookRequest, secret: Mapping[str, Any], ports: Ports | None = None
) -> Delivery:
    """The adapter's delivery, provided it may assert every event in it (its `event_types`, for
    parked events too): the one provenance gate every delivery passes. A public form can say "this
    person filled a form", never "they unsubscribed"; a refused type fails the whole delivery
    (400), so nothing is half-recorded."""
    kind = _kind(type(adapter))
    if kind is ReadingAdapter:
        delivery = adapter.read(request, secret, ports or network_ports())  # type: ignore[attr-defined]
    elif kind is GuardedAdapter:
        events, guard = adapter.parse_guarded(request, secret)  # type: ignore[attr-defined]
        delivery = Delivery(events=events, guard=guard)
    elif kind is ParsingAdapter:
        delivery = Delivery(events=adapter.parse(request, secret))  # type: ignore[attr-defined]
    else:
        raise TypeError(f"adapter {adapter.name!r} implements neither read nor parse")
    asserted: list[LeadEvent | PendingEvent] = [*delivery.events, *delivery.pending]
    for event in asserted:
        if event.event_type not in adapter.event_types:
            raise EventTypeNotAllowed(
                f"event type {event.event_type.value!r} may not come from provider {adapter.name!r}; "
                f"it may send: {', '.join(sorted(adapter.event_types))}"
            )
    return delivery
