"""Print the README's Configuration table from the settings: `python -m config.table`.

The README holds the table (a test checks it matches); this module is how it is regenerated.
"""
from __future__ import annotations

from annotated_types import Ge, Gt, Le

from config.settings import Settings


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def type_of(field) -> str:
    """Answer how the README names a field's type: its declared kind, else from its annotation and bounds."""
    extra = field.json_schema_extra or {}
    if "kind" in extra:
        return extra["kind"]
    if field.annotation is bool:
        return "flag (1/0)"
    word = "number" if float in (field.annotation, *getattr(field.annotation, "__args__", ())) else "integer"
    low = next((f"{_number(m.ge)}" for m in field.metadata if isinstance(m, Ge)), None)
    low = low or next((f"> {_number(m.gt)}" for m in field.metadata if isinstance(m, Gt)), None)
    high = next((_number(m.le) for m in field.metadata if isinstance(m, Le)), None)
    if low and high:
        return f"{word} {low}–{high}" if not low.startswith(">") else f"{word} {low}, ≤ {high}"
    return word


def default_of(field) -> str:
    """Answer how the README shows a field's default."""
    extra = field.json_schema_extra or {}
    if "shown" in extra:
        return extra["shown"]
    value = field.default
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str):
        return f"`{value}`"
    return _number(value)


def markdown_table() -> str:
    """Answer the Configuration table: one row per setting, in declaration order."""
    rows = ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `{name}` | {type_of(field)} | {default_of(field)} | {field.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
