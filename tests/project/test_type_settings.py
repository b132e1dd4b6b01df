"""mypy's settings: all of harness/ is checked with no error code switched off, and every
inline `# type: ignore[code]` names its code and says why (after it, or on the line above)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]*\])?(.*)$")


def test_mypy_checks_all_of_harness_with_no_code_switched_off() -> None:
    tomllib = pytest.importorskip("tomllib")
    mypy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["files"] == ["harness"]
    assert "overrides" not in mypy and "disable_error_code" not in mypy
    assert mypy["warn_unused_ignores"] is True
    assert "ignore-without-code" in mypy["enable_error_code"]


def unexplained_ignores(path: Path, root: Path = REPO) -> list[str]:
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        match = IGNORE.search(line)
        if match is None:
            continue
        after = match.group(2).strip().lstrip("#").strip()
        above = lines[i - 1].strip() if i else ""
        if not match.group(1) or not (after or above.startswith("#")):
            found.append(f"{path.relative_to(root)}:{i + 1}: {line.strip()}")
    return found


def test_every_type_ignore_names_its_code_and_says_why() -> None:
    found = [f for p in sorted((REPO / "harness").rglob("*.py")) for f in unexplained_ignores(p)]
    assert found == []


def test_an_unexplained_ignore_is_found(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "a = f()  # type: ignore[arg-type]  # the stub is wrong\n"
        "# the stub is wrong\nb = f()  # type: ignore[arg-type]\n"
        "c = f()  # type: ignore[arg-type]\n"
        "d = f()  # type: ignore  # no code\n")
    found = unexplained_ignores(tmp_path / "m.py", root=tmp_path)
    assert [f.split(":")[1] for f in found] == ["4", "5"]
