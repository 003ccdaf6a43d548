"""Guard rails on the product code's shape: a function over 40 lines says why, on its signature."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 40
REASON = re.compile(r"#\s*(long|noqa: C901)\s*[-:]\s*\S")


def long_functions_without_reason() -> list[str]:
    """Every function of attendance/ and lti/ longer than MAX_LINES whose signature gives no reason."""
    found = []
    for path in sorted([*ROOT.glob("attendance/**/*.py"), *ROOT.glob("lti/**/*.py")]):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.end_lineno - node.lineno + 1 <= MAX_LINES:
                continue
            signature = lines[node.lineno - 1:node.body[0].lineno - 1]
            if not any(REASON.search(line) for line in signature):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    return found


def test_long_functions_say_why():
    assert long_functions_without_reason() == []


def test_the_guard_sees_a_long_function(tmp_path, monkeypatch):
    package = tmp_path / "attendance"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (package / "mod.py").write_text(f"def too_long():\n{body}\n\n\ndef fine():  # long: a reason\n{body}\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert long_functions_without_reason() == ["attendance/mod.py:1 too_long"]
