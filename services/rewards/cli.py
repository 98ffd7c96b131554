"""`casework rewards` sub-commands."""

from __future__ import annotations

import typer

rewards_app = typer.Typer(no_args_is_help=True, help="Surplus-goods rewards, shortage penalties, decisions and settlement.")
