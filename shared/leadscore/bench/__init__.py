"""`make bench`: figures, never asserts. `pipeline` counts DynamoDB requests through the real
handlers and times calibrate/backtest; each area module measures one row group of issue 12's
speed table (`table.Row`), printed last beside its target."""

from leadscore.bench.pipeline import (
    READ_OPERATIONS,
    WRITE_OPERATIONS,
    X_EDUCATION_IGNORED,
    RequestCounter,
    _replicated,
    run,
)

__all__ = ["READ_OPERATIONS", "WRITE_OPERATIONS", "X_EDUCATION_IGNORED", "RequestCounter", "_replicated", "run"]
