"""A module over about 400 lines says at its top why it is one module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "harness"
LIMIT = 420  # "about 400"


def test_every_long_module_says_why_it_is_one_module() -> None:
    unexplained = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") <= LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if "Why one module" not in doc and "Why about" not in doc:
            unexplained.append(f"{path.relative_to(ROOT.parent)} ({text.count(chr(10))} lines)")
    assert not unexplained, "split these or say why at the top:\n" + "\n".join(unexplained)
