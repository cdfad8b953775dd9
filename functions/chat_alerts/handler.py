"""Sales topic (SNS, protocol lambda) -> the stage change's alert, posted to a Slack or Microsoft
Teams incoming webhook once per transition (invoked asynchronously: a failure is retried by
Lambda, then dead-lettered)."""

from __future__ import annotations

import gc
from typing import Any

gc.disable()  # cold start: what init imports lives as long as the container; collecting it is waste

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from leadscore.chat import ChatSettings, chat_alerts

logger = Logger()
# AWS calls only: X-Ray's http.client patch would record the webhook URL (a Slack webhook's secret
# is its path) in every trace, where trace readers, not only the secret's, would find it.
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=SnsModel)
def lambda_handler(event: SnsModel, context: LambdaContext) -> dict[str, Any]:
    poster = chat_alerts(ChatSettings.from_env())
    poster.bind(context)
    posted = sum(poster.deliver(record.Sns.Message) for record in event.Records)
    metrics.add_metric(name="ChatAlertsPosted", unit=MetricUnit.Count, value=posted)
    return {"posted": posted}


gc.freeze()  # init's objects are permanent: warm invocations' collections skip them
gc.enable()
