"""Scheduled: fade engagement, apply inactivity rules and demote leads that fell below an exit
threshold, visiting only the leads whose score can still change; publish stage changes whose
announcement is still pending (the sweeper)."""

from __future__ import annotations

import gc
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.accounts import run_account_decay
from leadscore.config import Settings
from leadscore.pipeline import run_decay

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=EventBridgeModel)
def lambda_handler(event: EventBridgeModel, context: LambdaContext) -> dict[str, Any]:
    report = run_decay(
        Settings.from_env(),
        now=event.time,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        lambda_context=context,
    )
    metrics.add_metric(name="LeadsReviewed", unit=MetricUnit.Count, value=report.reviewed)
    metrics.add_metric(name="DecayTransitions", unit=MetricUnit.Count, value=report.transitions)
    metrics.add_metric(name="AnnouncementsSwept", unit=MetricUnit.Count, value=report.announced)
    metrics.add_metric(name="LeadsFailed", unit=MetricUnit.Count, value=report.failed)
    logger.info("decay run", extra=report.model_dump())
    accounts = run_account_decay(  # in the time the leads left; what remains stays due
        Settings.from_env(),
        now=event.time,
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        lambda_context=context,
    )
    metrics.add_metric(name="AccountsReviewed", unit=MetricUnit.Count, value=accounts.reviewed)
    metrics.add_metric(name="AccountsFailed", unit=MetricUnit.Count, value=accounts.failed)
    logger.info("account decay run", extra=accounts.model_dump())
    return report.model_dump()


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
