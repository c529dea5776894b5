"""The crmkit command-line interface (Typer)."""
