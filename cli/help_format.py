"""How ``--help`` pages are laid out: plain text that re-flows to the terminal, examples verbatim.

Every command and group of ``spot-edge`` renders its help with click's plain formatter (typer's
``rich_markup_mode=None``, set by :class:`spot_edge.cli.common.CliApp`), adjusted here:

- **Paragraphs re-flow.** A docstring's paragraphs (separated by blank lines) are joined and
  wrapped to the terminal width, so a docstring hard-wrapped at 100 or 120 columns in the source
  is never broken a second time mid-sentence at 80.
- **Examples stay verbatim.** A paragraph that holds a command line (a line starting with
  ``spot-edge ``) or indented lines keeps its line breaks. ``Example: spot-edge ...`` on one
  line is shown as ``Example:`` with the command on its own, indented line, so that it can be
  copied whole. Example lines should be at most 74 characters (they are indented by 4).
- **No mid-word breaks at hyphens, no truncation.** Option names (``--pose-weights``) and
  hyphenated words wrap as whole words; option help and the command list's summaries are never
  cut short with ``...`` (a summary is the first sentence of the help, wrapped).
- **No markup.** Help text is printed as written: ``pip install 'spot-edge[tensorrt]'`` keeps
  its brackets.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from typing import Sequence

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["reflow_help", "first_sentence", "wrap_paragraphs", "HelpFormatter", "HelpContext", "HelpCommand",
           "HelpGroup", "VERBATIM_MARK"]

#: click's marker (a line holding only ``\b``) for "do not re-wrap this paragraph".
VERBATIM_MARK = "\b"

_COMMAND_LINE = re.compile(r"^\s*spot-edge(\s|$)")
_INLINE_EXAMPLE = re.compile(r"^(\s*Examples?\b[^:]{0,40}:)\s+(spot-edge\s.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])")
_KEEP_TOGETHER = re.compile(r"\[(default|env var): ")   # "[default: 1000]" is not split at its space
_GLUE = "\x1f"


def _split_inline_examples(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        match = _INLINE_EXAMPLE.match(line)
        if match:
            out += [match.group(1), "  " + match.group(2).strip()]
        else:
            out.append(line)
    return out


def _is_verbatim(lines: list[str]) -> bool:
    if lines and lines[0].strip() == VERBATIM_MARK:
        return True
    return any(_COMMAND_LINE.match(line) for line in lines) or any(line[:1].isspace() for line in lines[1:])


def reflow_help(text: str | None) -> str:
    """A docstring ready for click's formatter: dedented, cut at ``\\f``, example paragraphs
    marked verbatim (``\\b``), every other paragraph left for re-flowing."""
    text = inspect.cleandoc(text or "").partition("\f")[0]
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = _split_inline_examples(block.splitlines())
        if not lines:
            continue
        if _is_verbatim(lines):
            if lines[0].strip() == VERBATIM_MARK:
                lines = lines[1:]
            paragraphs.append("\n".join([VERBATIM_MARK, *lines]))
        else:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def first_sentence(text: str | None) -> str:
    """The first sentence of the first paragraph (the command list's summary), whole."""
    paragraph = re.split(r"\n\s*\n", inspect.cleandoc(text or "").partition("\f")[0])[0]
    words = " ".join(paragraph.replace(VERBATIM_MARK, " ").split())
    return _SENTENCE_END.split(words, maxsplit=1)[0]


def wrap_paragraphs(text: str, width: int, indent: str = "") -> str:
    """click's paragraph-preserving wrap, without breaking words at hyphens: paragraphs are
    re-flowed to ``width``; a paragraph whose first line is ``\\b`` keeps its lines (indented)."""
    wrapper = textwrap.TextWrapper(width=max(width, 10), initial_indent=indent, subsequent_indent=indent,
                                   replace_whitespace=False, break_on_hyphens=False)
    out = []
    for block in re.split(r"\n\s*\n", text.expandtabs()):
        lines = block.splitlines()
        if not lines:
            continue
        if lines[0].strip() == VERBATIM_MARK:
            out.append("\n".join(indent + line for line in lines[1:]))
            continue
        extra = len(lines[0]) - len(lines[0].lstrip())
        wrapper.initial_indent = wrapper.subsequent_indent = indent + " " * extra
        text = _KEEP_TOGETHER.sub(lambda m: f"[{m.group(1)}:{_GLUE}", " ".join(line.strip() for line in lines))
        out.append(wrapper.fill(text).replace(_GLUE, " "))
    return "\n\n".join(out)


class HelpFormatter(typer.Context.formatter_class):  # type: ignore[misc,name-defined]
    """click's help formatter with :func:`wrap_paragraphs` for text and option descriptions."""

    def write_text(self, text: str) -> None:
        self.write(wrap_paragraphs(text, self.width, " " * self.current_indent))
        self.write("\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = [(str(row[0]), str(row[1]) if len(row) > 1 else "") for row in rows]
        if not rows:
            return
        first_col = min(max(len(first) for first, _ in rows), col_max) + col_spacing
        text_width = max(self.width - first_col - 2, 10)
        pad = " " * (first_col + self.current_indent)
        for first, second in rows:
            self.write(" " * self.current_indent + first)
            if not second:
                self.write("\n")
                continue
            if len(first) <= first_col - col_spacing:
                self.write(" " * (first_col - len(first)))
            else:
                self.write("\n" + pad)
            lines = wrap_paragraphs(second, text_width).splitlines() or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write((pad + line).rstrip() + "\n")


class HelpContext(typer.Context):
    """The context of every spot-edge command: help pages use :class:`HelpFormatter`."""

    formatter_class = HelpFormatter


class _HelpLayout:
    context_class = HelpContext

    def format_help_text(self, ctx, formatter) -> None:
        text = reflow_help(self.help)
        if text:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(text)

    def get_short_help_str(self, limit: int = 45) -> str:
        return first_sentence(self.short_help or self.help)


class HelpCommand(_HelpLayout, TyperCommand):
    """A spot-edge command (plain help, see the module docstring)."""


class HelpGroup(_HelpLayout, TyperGroup):
    """A spot-edge command group (plain help, see the module docstring)."""
