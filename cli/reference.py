"""The command reference, docs/cli.md, generated from the commands' own ``--help``.

``python -m crmkit_cli.reference > docs/cli.md`` writes it; a test fails when the file
and the commands disagree.
"""

from __future__ import annotations

import typer
from crmkit_cli.main import app
from typer.testing import CliRunner

#: Width of the rendered help: fixed, so that the file does not depend on the terminal.
WIDTH = 100
HEADER = """# Command reference

Generated from each command's `--help` by `python -m crmkit_cli.reference > docs/cli.md`;
`make test` fails when this file is stale. Exit codes: see the README.
"""


def command_names() -> list[list[str]]:
    """Every command as its argument list (``["ingest"]``, ``["store", "info"]``), in order."""
    group = typer.main.get_command(app)
    names: list[list[str]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names += [[name, s] for s in sub] if sub else [[name]]
    return names


def help_text(args: list[str]) -> str:
    """Render the ``--help`` of one command at :data:`WIDTH` columns, without colour."""
    env = {"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH), "NO_COLOR": "1", "TERM": "dumb"}
    result = CliRunner().invoke(app, [*args, "--help"], env=env, prog_name="crmkit")
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    return "\n".join(lines).strip("\n") + "\n"


def reference() -> str:
    """Render the whole reference as Markdown."""
    parts = [HEADER]
    for args in [[], *command_names()]:
        title = " ".join(["crmkit", *args])
        parts.append(f"\n## `{title}`\n\n```text\n{help_text(args)}```\n")
    return "".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
