"""A module over about 400 lines says at its top why it is one module, and a function over
60 lines why it is long."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

ROOT = REPO / "harness"
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



FUNCTION_LIMIT = 60  # lines of a function's body, its signature and docstring aside


def long_functions(path: Path, root: Path = ROOT.parent) -> list[str]:
    """Functions whose body runs over FUNCTION_LIMIT lines without a `Why long:` line in their
    docstring."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(node) or ""
        body = node.body[1:] if doc else node.body
        lines = node.end_lineno - body[0].lineno + 1 if body and node.end_lineno else 0
        if lines > FUNCTION_LIMIT and "Why long:" not in doc:
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines})")
    return found


def test_every_long_function_says_why_at_its_top() -> None:
    found = [f for path in sorted(ROOT.rglob("*.py")) for f in long_functions(path)]
    assert not found, "split these or add a `Why long:` line to the docstring:\n" + \
        "\n".join(found)


def test_a_long_function_is_found(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(FUNCTION_LIMIT + 1))
    (tmp_path / "probe.py").write_text(
        f'def f():\n    """Short."""\n{body}\n\n'
        f'def g():\n    """Long.\n    Why long: a table.\n    """\n{body}\n\n'
        f'def h():\n{body[: body.index("    x60")]}')
    assert long_functions(tmp_path / "probe.py", tmp_path) == [
        f"probe.py:1 f ({FUNCTION_LIMIT + 1})"]
