"""Every command and option of `leadscore` explains itself: the whole parser tree is walked, so an
option added later without help (or with a default its help does not state) fails here."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Iterator

import pytest

from leadscore import cli

pytestmark = pytest.mark.unit

# Defaults that need no stating: a flag is off unless given, a repeatable option starts empty, and
# None means "not given" (an option whose absence means something says so in its help anyway).
_UNSTATED = (None, False, [], argparse.SUPPRESS)


def _parsers(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def _subcommands_without_help(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions if choice.help}
            missing += [name for name in action.choices if name not in helped]
    return missing


def _problems(parser: argparse.ArgumentParser, path: str) -> list[str]:
    problems = [f"{path} {name}: no help in the command list" for name in _subcommands_without_help(parser)]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.metavar or action.dest
        help_text = action.help or ""
        if not help_text.strip() or help_text == argparse.SUPPRESS:
            problems.append(f"{path} {name}: no help")
        elif action.default not in _UNSTATED and "default" not in help_text.lower():
            problems.append(f"{path} {name}: default {action.default!r} not stated in its help")
    return problems


@pytest.fixture
def parser(monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    # Some defaults come from the environment (SCORING_MODEL, LEADSCORE_WATCH): walk the plain ones.
    for name in ("SCORING_MODEL", "LEADSCORE_WATCH"):
        monkeypatch.delenv(name, raising=False)
    return cli.build_parser()


def test_every_command_and_option_has_help_that_states_its_default(parser: argparse.ArgumentParser) -> None:
    # Given every parser of the tree: leadscore, each command, each action of a command group
    parsers = list(_parsers(parser, "leadscore"))
    assert len(parsers) > 20  # the walk reached the nested commands (rescore start, outcomes import)
    # Then no option, argument or command lacks help, and a default that matters is stated
    problems = [problem for path, each in parsers for problem in _problems(each, path)]
    assert problems == []


def test_the_walk_catches_an_option_without_help_and_an_unstated_default() -> None:
    # Given a parser with the two mistakes the walk is there to catch
    parser = argparse.ArgumentParser(prog="x")
    commands = parser.add_subparsers()
    sub = commands.add_parser("sub")
    sub.add_argument("--bare")
    sub.add_argument("--size", type=int, default=3, help="how many")
    # Then both are reported, and the command without help in the list too
    problems = [problem for path, each in _parsers(parser, "x") for problem in _problems(each, path)]
    assert problems == [
        "x sub: no help in the command list",
        "x sub --bare: no help",
        "x sub --size: default 3 not stated in its help",
    ]


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"leadscore {importlib.metadata.version('leadscore')}"


def test_a_help_that_names_the_model_the_stack_ships_names_the_template_default(
    parser: argparse.ArgumentParser,
) -> None:
    """`validate-model`/`show-model` said '(default bundled:default, the model the stack ships)'
    while the template's ScoringModel ships bundled:catalog (README: 'The shipped default is the
    catalog'): a user checking what production scores with read the wrong model."""
    from leadscore.local.template import load_template, parameter_defaults

    shipped = parameter_defaults(load_template())["ScoringModel"]
    claims = [
        (path, action.help)
        for path, each in _parsers(parser, "leadscore")
        for action in each._actions
        if action.help and "stack ships" in action.help
    ]
    assert claims  # the commands still say which model the stack ships
    assert [(path, text) for path, text in claims if f"the stack ships {shipped}" not in text] == []
