"""`leadscore` command line. Each feature area registers its own subcommands.

Subcommand modules are imported lazily so that the Lambda runtime never needs the training or
local-stack dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from leadscore.errors import LeadScoreError

# Modules that define `register(subparsers)`; each adds its commands with `set_defaults(run=...)`.
COMMAND_MODULES = (
    "leadscore.commands.model",
    "leadscore.commands.rescore",
    "leadscore.commands.replay",
    "leadscore.commands.privacy",
    "leadscore.commands.migrate",
    "leadscore.commands.history",
    "leadscore.commands.audit",
    "leadscore.commands.leads",
    "leadscore.commands.console",
    "leadscore.learn.commands",
    "leadscore.learn.explain_commands",
    "leadscore.local.commands",
)


class CommandError(LeadScoreError):
    """A command could not do what was asked; the message says why."""

    status = 2
    code = "command_failed"


def package_version() -> str:
    """The installed package's version (pyproject.toml's, through the package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("leadscore")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore",
        description="Serverless lead scoring: tools and local runs. "
        "`leadscore COMMAND --help` describes a command and its defaults.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print the version and exit",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("leadscore."):
                continue  # that feature area is not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except LeadScoreError as exc:
        print(f"leadscore {args.command}: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
