"""The README's shell examples run as written from a fresh clone: every `leadscore` command in a
```bash block parses with the real parser and is reachable (`.venv/bin/leadscore`, or the block
activates the virtualenv first), every `make` target exists, and the offline data preparation
(the X Education split) runs."""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from leadscore import cli
from leadscore.local.glue import repo_root

pytestmark = pytest.mark.unit
README = repo_root() / "README.md"
ACTIVATE = re.compile(r"(^|&&|;)\s*(\.|source)\s+\.venv/bin/activate\b")
SEPARATORS = {";", "&&", "||", "|", "&"}
REDIRECTS = {"<", ">", ">>", "2>", "<<"}


def bash_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, content) of each ```bash block."""
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    ]


def commands(block: str) -> list[list[str]]:
    """The simple commands of a block: continuations joined, heredoc bodies and comments skipped,
    split at ;, &&, || and |, cut at the first redirection."""
    lines: list[str] = []
    heredoc_end: str | None = None
    pending = ""
    for line in block.splitlines():
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        marker = re.search(r"<<-?\s*'?(\w+)'?", line)
        if marker:
            heredoc_end = marker.group(1)
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    found: list[list[str]] = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        cut = False
        for token in lexer:
            if token in SEPARATORS:
                if current:
                    found.append(current)
                current, cut = [], False
            elif token in REDIRECTS or token.startswith(("<", ">")):
                cut = True
            elif not cut:
                current.append(token)
        if current:
            found.append(current)
    return found


BLOCKS = bash_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_shell_examples_with_leadscore_commands() -> None:
    leadscore = [c for _, b in BLOCKS for c in commands(b) if c[0].endswith("leadscore")]
    assert len(leadscore) >= 8


@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"README line {n}" for n, _ in BLOCKS])
def test_every_leadscore_command_of_a_block_parses_and_runs_from_a_fresh_clone(line: int, block: str) -> None:
    activated = bool(ACTIVATE.search(block))
    targets = set(re.findall(r"^([\w-]+):", (repo_root() / "Makefile").read_text(), flags=re.MULTILINE))
    for command in commands(block):
        if command[0] == "make":
            assert set(command[1:]) <= targets, f"README line {line}: no make target in {command}"
        if not command[0].endswith("leadscore"):
            continue
        # Reachable: the virtualenv's script, or a bare `leadscore` after the block activates it
        assert command[0] == ".venv/bin/leadscore" or (command[0] == "leadscore" and activated), (
            f"README line {line}: {shlex.join(command)} (write .venv/bin/leadscore or activate .venv)"
        )
        # And accepted by the real parser: no misspelled option or missing argument
        try:
            cli.build_parser().parse_args(command[1:])
        except SystemExit as exc:
            pytest.fail(f"README line {line}: {shlex.join(command)} does not parse (exit {exc.code})")


def test_the_split_that_makes_train_and_test_csv_runs_as_written(tmp_path: Path) -> None:
    # Given the README's block that splits Leads.csv, and a Leads.csv of the export's shape
    (script,) = [b for _, b in BLOCKS if "train.csv" in b and "<<'PY'" in b]
    header = ["Prospect ID", "Lead Number", "Lead Source", "Converted"]
    rows = [[f"id-{i:04d}", str(600000 + i), "Google", str(i % 3 == 0)] for i in range(300)]
    with (tmp_path / "Leads.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    # When it runs in that folder
    subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, check=True, timeout=60)
    # Then every lead lands in exactly one of train.csv and test.csv, about 70/30, with the header
    parts = {}
    for name in ("train.csv", "test.csv"):
        with (tmp_path / name).open(newline="", encoding="utf-8") as handle:
            first, *body = list(csv.reader(handle))
        assert first == header
        parts[name] = body
    assert sorted(parts["train.csv"] + parts["test.csv"]) == sorted(rows)
    assert 0.6 < len(parts["train.csv"]) / len(rows) < 0.8


def test_commands_skip_heredocs_and_comments_and_cut_at_redirections() -> None:
    block = (
        "cat > a.json <<'JSON'\n{\"leadscore\": 1}\nJSON\n"
        ".venv/bin/leadscore sign generic < a.json > h.txt  # leadscore local --port N\n"
        "make install && . .venv/bin/activate\n"
        "leadscore backtest m.yaml t.csv \\\n  --target Converted --json\n"
    )
    assert commands(block) == [
        ["cat"],
        [".venv/bin/leadscore", "sign", "generic"],
        ["make", "install"],
        [".", ".venv/bin/activate"],
        ["leadscore", "backtest", "m.yaml", "t.csv", "--target", "Converted", "--json"],
    ]
    assert ACTIVATE.search(block)
