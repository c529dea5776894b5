"""The settings reference, docs/settings.md, generated from the settings themselves.

Each section of :class:`~crmkit.config.settings.Settings` becomes a table of its keys:
type, default, the range :data:`~crmkit.config.rules.RULES` checks, and the description
from the section's docstring. ``python -m crmkit.config.reference > docs/settings.md``
writes it; a test fails when the file and the code disagree.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from crmkit.config.rules import RULES
from crmkit.config.settings import Settings

HEADER = """# Settings reference

Generated from the settings' own definitions by
`python -m crmkit.config.reference > docs/settings.md`; `make test` fails when this file
is stale. How the file is found and how options override it: [configuration.md](configuration.md).
"""


def _descriptions(cls: type) -> dict[str, str]:
    """Read the ``Attributes`` (or ``Parameters``) block of a numpy-style docstring."""
    doc = cls.__doc__ or ""
    block = re.split(r"\n\s*(?:Attributes|Parameters)\n\s*-+\n", doc, maxsplit=1)
    if len(block) < 2:
        return {}
    out: dict[str, str] = {}
    current: list[str] = []
    for line in block[1].splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not line.startswith("        "):  # a name line (4 spaces), or names "a, b"
            current = [n.strip() for n in stripped.split(",")]
            continue
        for name in current:
            out[name] = (out.get(name, "") + " " + stripped).strip()
    return out


def _type_name(hint: Any) -> str:  # noqa: ANN401
    if isinstance(hint, type):
        return hint.__name__
    text = str(hint).replace("typing.", "").replace("collections.abc.", "")
    return re.sub(r"<class '([a-z]+)'>", r"\1", text)


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if dataclasses.is_dataclass(value):
        return "(a table)"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section_table(name: str, cls: type) -> str:
    """Return the Markdown table of one section's keys."""
    rules = {key: meaning for section, key, _, meaning in RULES if section == name}
    hints = typing.get_type_hints(cls)
    described = _descriptions(cls)
    rows = [f"\n## `[{name}]`\n", "| key | type | default | allowed | what it does |",
            "|---|---|---|---|---|"]  # fmt: skip
    for field in dataclasses.fields(cls):
        rows.append(
            f"| `{field.name}` | `{_cell(_type_name(hints[field.name]))}` | "
            f"{_cell(_default(field))} | {_cell(rules.get(field.name, ''))} | "
            f"{_cell(described.get(field.name, ''))} |"
        )
    return "\n".join(rows) + "\n"


def settings_reference() -> str:
    """Return the whole settings reference as Markdown."""
    hints = typing.get_type_hints(Settings)
    parts = [HEADER]
    for field in dataclasses.fields(Settings):
        cls = hints[field.name]
        parts.append(section_table(field.name, cls))
        inner = typing.get_type_hints(cls)
        for sub in dataclasses.fields(cls):
            if dataclasses.is_dataclass(inner[sub.name]):
                parts.append(section_table(f"{field.name}.{sub.name}", inner[sub.name]))
    return "".join(parts)


if __name__ == "__main__":
    print(settings_reference(), end="")
