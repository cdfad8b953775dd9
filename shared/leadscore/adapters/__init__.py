"""Registry of webhook provider adapters.

Every public module of this package that defines a module-level `ADAPTER` is a provider, found by
`pkgutil` at first use: adding a provider is adding one module (plus its `Provider` name).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from leadscore.adapters.base import Adapter, Channel, WebhookRequest
from leadscore.errors import UnknownProvider

__all__ = ["Adapter", "Channel", "WebhookRequest", "get_adapter", "supported"]


@cache
def _registry() -> dict[str, Adapter]:
    adapters: dict[str, Adapter] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_") or module_info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        adapter: Adapter | None = getattr(module, "ADAPTER", None)
        if adapter is not None:
            adapters[adapter.name] = adapter
    return adapters


def supported(channel: Channel) -> list[str]:
    """Provider names of one channel ('form' or 'email'), sorted."""
    return sorted(
        name for name, adapter in _registry().items() if adapter.channel == channel and not adapter.queue_only
    )


def get_adapter(name: str, channel: Channel, *, from_queue: bool = False) -> Adapter:
    """The adapter for `name` on `channel`; UnknownProvider (404) for anything else, so a form URL
    cannot be used to feed email events and vice versa, and a queue-only source (SES, which
    carries no signature) cannot be forged over the public HTTP route."""
    adapter = _registry().get(name)
    if adapter is None or adapter.channel != channel or (adapter.queue_only and not from_queue):
        choices = ", ".join(supported(channel)) or "none"
        raise UnknownProvider(
            f"unknown {channel} provider {name[:40]!r}; supported {channel} providers: {choices}"
        )
    return adapter
