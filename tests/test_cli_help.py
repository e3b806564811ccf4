"""Every ``--help`` of ``spot-edge`` (commands and groups) reads well at 80 columns.

Walks every registered command of the root app and renders its help at 80 columns, asserting: exit
code 0, no line over 80 columns, nothing truncated ('…', or a summary cut short in a command
list), and every example command line of the docstring on one line, intact.
"""

from __future__ import annotations

import inspect
import re

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from spot_edge.cli.app import app
from spot_edge.cli.common import CliApp
from spot_edge.cli.help_format import first_sentence

WIDTH = 80
ENV = {"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH), "LINES": "50"}
_EXAMPLE = re.compile(r"^(?:Examples?\b[^:]*:\s+)?(spot-edge(?:\s.*)?)$")


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(get_command(app)))


def _help(args, target=app) -> str:
    result = CliRunner().invoke(target, [*args, "--help"], env=ENV)
    assert result.exit_code == 0, result.output
    return result.output


def _squash(text: str) -> str:
    return " ".join(text.split())


def example_lines(help_text: str | None) -> list[str]:
    """The example command lines of a docstring (``spot-edge ...``, alone or after ``Example:``)."""
    lines = inspect.cleandoc(help_text or "").partition("\f")[0].splitlines()
    found = (_EXAMPLE.match(line.strip()) for line in lines)
    return [m.group(1).strip() for m in found if m]


def test_every_command_is_walked():
    names = {" ".join(path) for path, _ in COMMANDS}
    for expected in ("bench", "doctor", "demo", "train", "run", "gallery enroll", "model info", "pose maps",
                     "visualize tsne", "kernels build", "build-engine"):
        assert expected in names


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "spot-edge" for p, _ in COMMANDS])
def test_help_renders_at_80_columns(path, command):
    output = _help(list(path))
    too_long = [line for line in output.splitlines() if len(line) > WIDTH]
    assert not too_long, f"lines over {WIDTH} columns in `spot-edge {' '.join(path)} --help`: {too_long}"
    assert "…" not in output
    rendered = {line.strip() for line in output.splitlines()}
    for example in example_lines(command.help):
        assert example in rendered, f"example not on one line in `spot-edge {' '.join(path)} --help`: {example}"
    flat = _squash(output)
    for name, sub in getattr(command, "commands", {}).items():   # command lists: whole summaries
        summary = _squash(first_sentence(sub.short_help or sub.help))
        assert summary in flat, f"summary of {name!r} cut short: {summary}"


def _demo_app() -> CliApp:
    demo = CliApp(help="A demo group.")

    @demo.command("go")
    def go(
        extras: str = typer.Option("x", help="Install with pip install 'spot-edge[tensorrt]' ([bold]not bold[/])."),
        weights: str = typer.Option("w", "--pose-weights-file-with-a-long-name",
                                    help="See --pose-weights-file-with-a-long-name and --another-hyphenated-option "
                                         "for the long-winded-but-hyphenated-words case."),
    ) -> None:
        """Do the thing.

        This paragraph was hard-wrapped at a hundred columns in the source, which is wider than
        the terminal that shows it, so a formatter that kept the source's line breaks would break each of
        these lines a second time in the middle of a sentence, leaving short ragged lines behind.

        Examples:
          spot-edge go --extras 'spot-edge[tensorrt]'
          spot-edge go --pose-weights-file-with-a-long-name body_pose_model.pth

        Example: spot-edge go --extras '[red]literal[/]'
        """

    demo.command("other")(lambda: None)
    return demo


def test_paragraphs_reflow_examples_stay_verbatim_and_text_is_not_markup():
    output = _help(["go"], _demo_app())
    lines = output.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    start = next(i for i, line in enumerate(lines) if "hard-wrapped" in line)
    paragraph = lines[start:lines.index("", start)]
    assert len(paragraph) >= 3 and all(len(line) >= 60 for line in paragraph[:-1]), paragraph
    rendered = {line.strip() for line in lines}
    assert {"spot-edge go --extras 'spot-edge[tensorrt]'", "spot-edge go --extras '[red]literal[/]'",
            "spot-edge go --pose-weights-file-with-a-long-name body_pose_model.pth"} <= rendered
    flat = _squash(output)
    assert "pip install 'spot-edge[tensorrt]' ([bold]not bold[/])" in flat
    # option names and hyphenated words are never split at a hyphen
    for word in ("--pose-weights-file-with-a-long-name", "--another-hyphenated-option",
                 "long-winded-but-hyphenated-words"):
        assert word in output


def test_group_summaries_are_whole_sentences():
    output = _help([], _demo_app())
    assert "Do the thing." in output and "..." not in output.split("Commands:")[1]
