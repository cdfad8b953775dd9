"""`leadscore console`: the lead console, a local read-only web app over a stack's lead API."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8421
DEFAULT_LOCAL = "http://127.0.0.1:3000"


def register(subparsers: Any) -> None:
    console = subparsers.add_parser(
        "console",
        help="browse leads, scores over time and the model in your browser (local, read-only)",
        description="Serve the lead console on 127.0.0.1. It reads a stack's lead API, signing each "
        "request with your own AWS credentials (SigV4): it shows exactly what your IAM access allows. "
        "Without --api-url, --stack or --demo it reads the local stack (`make local`).",
    )
    source = console.add_mutually_exclusive_group()
    source.add_argument("--api-url", metavar="URL", help="the lead API's base URL (a stack's ApiUrl output)")
    source.add_argument("--stack", metavar="NAME", help="a deployed stack: its ApiUrl output is read")
    source.add_argument(
        "--local",
        metavar="URL",
        nargs="?",
        const=DEFAULT_LOCAL,
        help=f"a running `leadscore local` (default when no source is given: {DEFAULT_LOCAL})",
    )
    source.add_argument(
        "--demo",
        metavar="STATE.json",
        nargs="?",
        const="",
        help="what the last `make demo` replayed, restored into a local stack inside this process "
        "(default file: build/demo/state.json)",
    )
    console.add_argument("--region", help="AWS region of --stack/--api-url (default: your AWS configuration)")
    console.add_argument("--profile", help="AWS profile to sign with (default: your default credentials)")
    console.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: a free one)",
    )
    console.add_argument(
        "--reports",
        type=Path,
        metavar="DIR",
        default=Path("reports"),
        help="folder of `leadscore backtest --report` files; the newest is shown (default: ./reports)",
    )
    console.set_defaults(run=_console)


def _console(args: argparse.Namespace) -> int:
    import signal
    import threading
    from contextlib import ExitStack

    from leadscore.cli import CommandError
    from leadscore.console import api
    from leadscore.console.app import Console, new_token, serve

    with ExitStack() as cleanup:
        if args.stack:
            target = api.target_for_stack(args.stack, args.region, args.profile)
        elif args.api_url:
            target = api.target_for_url(args.api_url, args.region, args.profile)
        elif args.demo is not None:
            target = cleanup.enter_context(_demo_stack(args.demo))
        else:
            target = api.target_for_local(args.local or DEFAULT_LOCAL)
        console = Console(api.LeadApi(target), reports=args.reports.expanduser().resolve())
        try:
            # The user's own credentials sign for a deployed stack: only the browser given the
            # token may use them. A local or demo stack's API is open on loopback already.
            token = new_token() if args.stack or args.api_url else None
            server = serve(console, args.port, token)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); choose another port with --port"
            ) from exc
        print(
            f"leadscore console: http://127.0.0.1:{server.port}/{f'?token={token}' if token else ''}"
            f"  (reading {target.label})",
            flush=True,
        )
        print("Read-only; Ctrl-C stops it.", flush=True)
        _check(console)
        stopping = threading.Event()

        def _stop(signum: int, frame: Any) -> None:
            if not stopping.is_set():
                stopping.set()
                threading.Thread(target=server.shutdown, daemon=True).start()

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.serve_forever()
        finally:
            server.server_close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    print("leadscore console: stopped", flush=True)
    return 0


@contextmanager
def _demo_stack(path: str) -> Iterator[Any]:
    from leadscore.console import api, snapshot

    state_path = Path(path) if path else snapshot.default_path()
    document = snapshot.load(state_path)
    with snapshot.restored(document) as stack:
        saved = str(document["saved_at"])[:16].replace("T", " ")
        print(f"leadscore console: restored the demo of {saved} UTC from {state_path}", flush=True)
        yield api.target_for_local(stack.url, f"the demo of {saved} UTC (local stack {stack.url})")


def _check(console: Any) -> None:
    """Say at once when the lead API cannot be read (not running, no access), instead of on every page."""
    from leadscore.console.api import ApiError

    try:
        _, missing = console.catalog()
        if missing:
            print(
                f"leadscore console: warning: {missing}: the model page and stage lists need it", flush=True
            )
    except ApiError as exc:
        hint = " (start it with `make local`)" if "local stack" in console.api.target.label else ""
        print(f"leadscore console: warning: {exc.message}{hint}", flush=True)
