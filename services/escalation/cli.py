"""`casework escalation` sub-commands."""

from __future__ import annotations

import typer

escalation_app = typer.Typer(no_args_is_help=True, help="SLA clocks and the escalation ladder.")
