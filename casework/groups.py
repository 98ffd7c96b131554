"""How every `casework` command group is made, so that all of them read alike in `--help`."""

from __future__ import annotations

from typing import Any

import typer


def command_group(help: str, **options: Any) -> typer.Typer:
    """A group of sub-commands whose help is Markdown.

    Docstrings are wrapped at the source's width; in Typer's Rich mode each of those line
    breaks stays in the help, in mid-sentence. Markdown joins them into paragraphs that the
    terminal's width wraps, and shows `code` as code.
    """
    return typer.Typer(rich_markup_mode="markdown", no_args_is_help=True, help=help, **options)
