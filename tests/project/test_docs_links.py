"""Every relative link in README.md and docs/ resolves: the file exists and its #anchor
is a heading there, slugged as GitHub slugs headings. The README is the front door and
stays short (<= 250 lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 250

LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a shell block is no heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, punctuation other than
    '-' and '_' removed, each space turned into '-' (github-slugger's rule)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*]", "", text)  # code and emphasis marks are not rendered
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs, a repeated slug numbered -1, -2, ...
    as GitHub numbers them, and explicit `<a id=...>` / `<a name=...>` targets."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
        found.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return found


def relative_links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text()):
        line = re.sub(r"`[^`]*`", "", line)  # a link written inside code is not a link
        targets += LINK.findall(line) + IMAGE.findall(line)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # http:, mailto:


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(root)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_docs_folder_is_not_empty_and_every_page_is_linked() -> None:
    linked = {(p.parent / t.partition("#")[0]).resolve()
              for p in PAGES for t in relative_links(p) if t.partition("#")[0]}
    pages = [p for p in PAGES if p.parent == REPO / "docs"]
    assert len(pages) >= 8
    assert [p.name for p in pages if p.resolve() not in linked] == []


def test_readme_is_a_short_front_door() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= README_MAX_LINES


def test_github_slugs() -> None:
    """Checked against the anchors GitHub gives these headings."""
    assert github_slug("Weights & Biases") == "weights--biases"
    assert github_slug("Optuna: tuning and many machines") == "optuna-tuning-and-many-machines"
    assert github_slug("What the report trusts: the study record") == (
        "what-the-report-trusts-the-study-record")
    assert github_slug("A throwaway PostgreSQL server (tests and trying it out)") == (
        "a-throwaway-postgresql-server-tests-and-trying-it-out")
    assert github_slug("The `record/` folder") == "the-record-folder"
    assert github_slug("flat_label and **bold**") == "flat_label-and-bold"


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text(
        "# Title\n\n## Same\n\n## Same\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#same-1) [ok](#here) [bad](other.md#not-a-heading) "
                    "[bad](missing.md) [web](https://example.com/x.md)\n\n## Here\n"
                    "`[code](nowhere.md)`\n")
    assert broken_links(page, root=tmp_path) == [
        "other.md#not-a-heading: no heading #not-a-heading in other.md",
        "missing.md: no file missing.md"]
