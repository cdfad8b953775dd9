"""Issue 12's "local webhook -> SQL notification" row: the local stack as `make local` runs it
(`LocalStack` with its defaults: moto in this process, the background poller, the scheduler),
signed generic-form webhooks that each take a fresh lead over the SQL threshold, and the time from
sending each request to its SQL notification arriving on an SQS queue subscribed to the sales topic.

Requests go one at a time (each waits for its notification), so a figure is one lead's latency,
not a queue behind a burst. The first few leads are a warm-up (the handlers' cold imports) and are
not counted. The CPU time per lead (every thread of the process) is printed beside the latencies:
on a loaded machine the latencies stretch, the CPU time much less. Then the stack sits idle for a
while and the process's CPU time over that period says whether the poller really sleeps.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
import warnings
from typing import Any

from leadscore.bench.table import Row

PATH = "local webhook → SQL notification"
TARGET_P99_MS = 150.0
REQUESTS, QUICK_REQUESTS = 200, 20
WARM_UP = 3
IDLE_SECONDS, QUICK_IDLE_SECONDS = 3.0, 1.0
NOTIFICATION_TIMEOUT = 30.0  # a notification later than this is reported as lost, not waited for


def rows(quick: bool) -> list[Row]:
    count = QUICK_REQUESTS if quick else REQUESTS
    # The machine's load when the run starts: on a shared machine it stretches every figure.
    load = os.getloadavg()[0]
    with warnings.catch_warnings():
        # Each invocation's empty metrics warn (as `leadscore local` filters them): noise here.
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        latencies, cpu_per_lead, idle_cpu, fallback = _measure(count, quick)
    arrived = sorted(seconds for seconds in latencies if seconds is not None)
    lost = count - len(arrived)
    if not arrived:
        return [Row(PATH, f"no notification within {NOTIFICATION_TIMEOUT:.0f} s", _target(), None)]
    p50, p99 = _percentile(arrived, 50) * 1000, _percentile(arrived, 99) * 1000
    return [
        Row(
            PATH,
            f"p99 {p99:.0f} ms (p50 {p50:.0f} ms, n={count})",
            _target(),
            p99 <= TARGET_P99_MS and not lost,
            detail=(
                f"max {arrived[-1] * 1000:.0f} ms, mean {statistics.fmean(arrived) * 1000:.0f} ms"
                + (f", {lost} LOST" if lost else "")
                + f"; CPU {cpu_per_lead * 1000:.0f} ms per lead (all threads: stack, emulator, client)"
                + f"; idle: {idle_cpu:.1%} of a core (fallback tick {fallback:g} s)"
                + f"; load average {load:.1f} at the start"
            ),
        )
    ]


def _measure(count: int, quick: bool) -> tuple[list[float | None], float, float, float]:
    """(each lead's latency, CPU seconds per lead, the idle stack's CPU share, its fallback tick)."""
    from leadscore.local.server import LocalOptions, LocalStack

    # `make local`'s stack; its own names, as moto's state in this process may hold another's.
    options = LocalOptions(
        port=0,
        log=None,
        say=lambda line: None,
        prefix=f"bench{uuid.uuid4().hex[:6]}-",
        freeze_gc_survivors=True,  # as `leadscore local` runs
    )
    with LocalStack(options) as stack:
        probe = _Probe(stack)
        for _ in range(WARM_UP):
            probe.one_lead()
        cpu = time.process_time()
        latencies = [probe.one_lead() for _ in range(count)]
        cpu_per_lead = (time.process_time() - cpu) / count
        probe.close()
        stack.settle()  # the last lead's trailing work (its account) is not idle time
        idle_cpu = _idle_cpu_share(QUICK_IDLE_SECONDS if quick else IDLE_SECONDS)
    return latencies, cpu_per_lead, idle_cpu, options.pump_interval


def _target() -> str:
    return f"p99 ≤ {TARGET_P99_MS:.0f} ms"


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list (p99 of 200 values: the 198th)."""
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]


def _idle_cpu_share(seconds: float) -> float:
    """CPU time of this whole process (every thread: poller, scheduler, HTTP server, emulator)
    over `seconds` of wall time with nothing to do, as a share of one core."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


class _Probe:
    """Sends one signed webhook per fresh lead and waits for that lead's SQL notification."""

    def __init__(self, stack: Any) -> None:
        from leadscore.local.glue import repo_root
        from leadscore.local.replay import Client

        secrets = json.loads((repo_root() / "events/local/secrets.json").read_text(encoding="utf-8"))
        self._secret = secrets["generic"]["secret"]
        self._client = Client(stack.url)
        self._queue, _ = stack.subscribe_queue(
            "SalesTopic", f"{stack.options.prefix}sales", filter_policy={"stage": ["SQL"]}
        )
        self._sqs = stack.session.client("sqs")

    def one_lead(self) -> float | None:
        """Seconds from sending the webhook to receiving its SQL notification (None: never came)."""
        from leadscore.local import signing

        email = f"bench{uuid.uuid4().hex[:12]}@globex.example"
        body = json.dumps(_promoting_events(email)).encode()
        headers = signing.standard_webhook_headers(body, self._secret, f"msg_{uuid.uuid4().hex}")
        started = time.perf_counter()
        status, answer = self._client.request("POST", "/v1/forms/generic", body, headers)
        if status != 202:
            raise RuntimeError(f"the webhook was refused: HTTP {status} {answer}")
        while time.perf_counter() - started < NOTIFICATION_TIMEOUT:
            # Long polling: moto answers as soon as a message lands, as SQS does.
            for message in self._sqs.receive_message(
                QueueUrl=self._queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
                notification = json.loads(message["Body"])
                if notification.get("email") == email and notification.get("to_stage") == "SQL":
                    return time.perf_counter() - started
        return None

    def close(self) -> None:
        self._client.close()


def _promoting_events(email: str) -> dict[str, Any]:
    """A demo request by a senior buyer at a large company, then a pricing page view: a new lead
    goes straight past the shipped model's SQL threshold."""
    return {
        "events": [
            {
                "email": email,
                "event": "demo_requested",
                "attributes": {
                    "job_title": "VP Sales",
                    "company_size": 800,
                    "industry": "Software",
                    "country": "US",
                },
            },
            {"email": email, "event": "page_viewed", "url": "https://www.leadscore.example/pricing"},
        ]
    }
