"""`leadscore local`, `leadscore local-fire`, `leadscore sign` and `leadscore demo`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from leadscore.local import signing
from leadscore.local.glue import repo_root

DEFAULT_PORT = 3000
DEFAULT_SECRETS = "events/local/secrets.json"
DEFAULT_SENDGRID_KEY = "events/local/sendgrid-test-key.pem"


def register(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local",
        help="run the whole product on 127.0.0.1 with an embedded AWS emulator (no cloud, no Docker)",
        description="Serve the template's HTTP API on 127.0.0.1, with every table, stream, topic, queue, "
        "subscription and secret of template.yaml in an embedded moto server.",
    )
    local.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="HTTP port (default 3000; 0 picks a free one)"
    )
    local.add_argument(
        "--emulator-port",
        type=int,
        default=0,
        help="port of the embedded AWS emulator, for your own AWS clients (default: a free one, printed)",
    )
    local.add_argument(
        "--secrets", type=Path, default=None, help=f"webhook secrets JSON (default {DEFAULT_SECRETS})"
    )
    local.add_argument(
        "--watch",
        action="store_true",
        default=os.environ.get("LEADSCORE_WATCH", "") not in ("", "0", "false"),
        help="subscribe a queue to each topic, print every notification and serve them on "
        "GET /_local/topics/<TopicLogicalId>/messages (also LEADSCORE_WATCH=1)",
    )
    local.add_argument("--log-level", default="WARNING", help="handlers' own log level (default WARNING)")
    local.add_argument(
        "--model",
        metavar="FILE",
        default=os.environ.get("SCORING_MODEL") or None,
        help="run the functions on this scoring model (a learned or hand-written model file, or "
        "bundled:NAME; default: SCORING_MODEL if set, else the template's bundled:catalog)",
    )
    local.set_defaults(run=_local)

    fire = subparsers.add_parser(
        "local-fire", help="fire a function's schedule now on a running `leadscore local`"
    )
    fire.add_argument(
        "function",
        nargs="?",
        default="DecayScoresFunction",
        help="logical id of a function with a schedule (default DecayScoresFunction)",
    )
    fire.add_argument(
        "--url",
        default=f"http://127.0.0.1:{DEFAULT_PORT}",
        help=f"the local stack's URL (default http://127.0.0.1:{DEFAULT_PORT})",
    )
    fire.add_argument("--at", default=None, help="event time (ISO 8601), the handler's 'now' (default: now)")
    fire.set_defaults(run=_local_fire)

    sign = subparsers.add_parser(
        "sign",
        help="sign a webhook body (stdin) as a provider would; prints headers for `curl -H @file`",
        description="Reads the body from stdin (or --body) and prints one `name: value` header per line, "
        "for `curl -H @headers.txt --data-binary @body`. Test secrets come from --secrets.",
    )
    sign.add_argument(
        "provider",
        choices=sorted(signing.SIGNERS),
        metavar="PROVIDER",
        help=f"whose signature to make: {', '.join(sorted(signing.SIGNERS))}",
    )
    sign.add_argument("--body", type=Path, default=None, help="body file (default: stdin)")
    sign.add_argument("--secrets", type=Path, default=None, help=f"secrets JSON (default {DEFAULT_SECRETS})")
    sign.add_argument(
        "--secret", default=None, help="override the secret (generic: whsec_..., typeform: text)"
    )
    sign.add_argument(
        "--key", type=Path, default=None, help=f"SendGrid private key PEM (default {DEFAULT_SENDGRID_KEY})"
    )
    sign.add_argument("--id", default=None, help="generic: the webhook-id (default: a hash of the body)")
    sign.add_argument("--timestamp", type=int, default=None, help="unix seconds (default: now)")
    sign.add_argument(
        "--curl", metavar="URL", default=None, help="print a complete curl command for URL instead"
    )
    sign.add_argument(
        "--url",
        default=f"http://127.0.0.1:{DEFAULT_PORT}",
        help="the public base URL the provider calls (HubSpot signs it; default: the local stack)",
    )
    sign.add_argument(
        "--out-body",
        type=Path,
        default=None,
        help="where to write the body for providers that sign inside it",
    )
    sign.set_defaults(run=_sign)

    demo = subparsers.add_parser(
        "demo", help="replay two months of leads through a local stack and show the results"
    )
    demo.add_argument("--leads", type=int, default=200, help="number of leads (default 200)")
    demo.add_argument(
        "--seed", type=int, default=7, help="scenario seed: same seed, same scenario (default 7)"
    )
    demo.add_argument(
        "--days", type=int, default=60, help="length of the simulated period in days (default 60)"
    )
    demo.add_argument("--top", type=int, default=15, help="rows of the ranked table (default 15)")
    demo.add_argument("--verbose", action="store_true", help="print one line per function invocation")
    demo.add_argument(
        "--state",
        type=Path,
        default=None,
        help="where to save the tables for `leadscore console --demo` (default build/demo/state.json)",
    )
    demo.set_defaults(run=_demo)


# ------------------------------------------------------------------------------------------ local
def _local(args: argparse.Namespace) -> int:
    from leadscore.cli import CommandError
    from leadscore.local.server import LocalOptions, LocalStack, StackError

    warnings.filterwarnings("ignore", category=UserWarning, module="aws_lambda_powertools.*")
    options = LocalOptions(
        port=args.port,
        emulator_port=args.emulator_port,
        secrets_path=args.secrets,
        watch=args.watch,
        log_level=args.log_level,
        model=args.model,
        freeze_gc_survivors=True,
    )
    stack = LocalStack(options)
    try:
        stack.start()
    except StackError as exc:
        raise CommandError(str(exc)) from exc
    stopped = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print("\n".join(stack.banner()), flush=True)
        while not stopped.wait(0.5):
            pass
    finally:
        print("\nleadscore local: stopping...", flush=True)
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("leadscore local: stopped", flush=True)
    return 0


def _local_fire(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from leadscore.cli import CommandError

    url = f"{args.url.rstrip('/')}/_local/schedules/{quote(args.function)}"
    if args.at:
        url += f"?at={quote(args.at)}"
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=330) as response:
            print(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise CommandError(f"{exc.code}: {exc.read().decode()}") from exc
    except urllib.error.URLError as exc:
        raise CommandError(
            f"no local stack at {args.url} ({exc.reason}); start it with `make local`"
        ) from exc
    return 0


# ------------------------------------------------------------------------------------------- sign
def _sign(args: argparse.Namespace) -> int:
    from leadscore.cli import CommandError

    body = args.body.read_bytes() if args.body else sys.stdin.buffer.read()
    secrets_path = args.secrets or repo_root() / DEFAULT_SECRETS
    try:
        secrets = json.loads(Path(secrets_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        if args.secret is None and args.provider != "sendgrid":
            raise CommandError(f"cannot read secrets from {secrets_path}: {exc}") from exc
        secrets = {}
    entry = dict(secrets.get(args.provider) or {})
    if args.secret is not None:
        entry["secret"] = args.secret
    if args.provider == "sendgrid":
        key_path = args.key or repo_root() / DEFAULT_SENDGRID_KEY
        try:
            entry["private_key_pem"] = Path(key_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read the SendGrid key {key_path}: {exc}") from exc
    url = args.curl or args.url
    context = signing.SignContext(url=url, timestamp=args.timestamp, msg_id=args.id)
    try:
        signed = signing.sign(args.provider, body, entry, context)
    except (KeyError, ValueError, TypeError) as exc:
        raise CommandError(
            f"cannot sign for {args.provider}: {exc} (check its entry in {secrets_path}, or pass --secret)"
        ) from exc
    if signed.body != body:
        if not args.out_body:
            raise CommandError(
                f"{args.provider} signs inside the body: pass --out-body FILE for the body to send"
            )
        args.out_body.write_bytes(signed.body)
    if args.curl:
        flags = " ".join(f"-H {shlex.quote(f'{k}: {v}')}" for k, v in signed.headers.items())
        given = args.out_body if signed.body != body else args.body
        source = shlex.quote(f"@{given}") if given else "@-"
        target = f"{args.curl}?{signed.query}" if signed.query else args.curl
        print(f"curl -sS -X POST {flags} --data-binary {source} {shlex.quote(target)}")
    else:
        for name, value in signed.headers.items():
            print(f"{name}: {value}")
        if signed.query:
            print(f"# query: ?{signed.query}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    from leadscore.local.replay import DemoOptions, run_demo

    options = DemoOptions(
        leads=args.leads,
        seed=args.seed,
        days=args.days,
        top=args.top,
        verbose=args.verbose,
        state=args.state,
    )
    return run_demo(options)
