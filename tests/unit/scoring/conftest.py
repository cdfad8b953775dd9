from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leadscore.model_store import load_model
from leadscore.scoring.model import ScoringModel

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def model() -> ScoringModel:
    return load_model("bundled:default")
