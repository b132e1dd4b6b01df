"""The report in a real browser (headless Chromium): the committed examples and a freshly built
one at desktop and phone sizes. No console errors, no network requests, every image loaded, no
horizontal overflow, the compact table whole, and the answer within the first screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import Browser, find_chromium
from conftest import REPO

ROOT = REPO
EXAMPLES = [ROOT / "results" / "example" / "report.html",
            ROOT / "results" / "example_one_at_a_time" / "report.html"]
VIEWPORTS = [(1440, 900), (390, 844)]
FIRST_SCREEN_PX = 900

# Runs in the page after load; returns a JSON string (what the DevTools protocol hands back).
# W is the emulated width: a phone viewport zooms out to fit wide content, so innerWidth
# alone would hide an overflow.
PROBE = """
(async () => {
  const W = __WIDTH__;
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  const doc = document.documentElement;
  const box = el => { if (!el) return null; const r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top + scrollY, bottom: r.bottom + scrollY}; };
  // the first table stands in on a report without a compact one (the old 20-column layout)
  const table = document.getElementById("compact") || document.querySelector("table");
  const wrap = table && table.parentElement;
  const cells = table ? [...table.querySelectorAll("th, td")] : [];
  return JSON.stringify({
    innerWidth: W, scrollWidth: doc.scrollWidth, scrollHeight: doc.scrollHeight,
    images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0,
                                            alt: i.alt})),
    compact: box(table), isCompact: !!table && table.id === "compact",
    wrapOverflow: wrap ? wrap.scrollWidth - wrap.clientWidth : null,
    hiddenCells: cells.filter(c => { const r = c.getBoundingClientRect();
      return r.right > W + 0.5 || r.left < -0.5; }).length,
    answer: box(document.querySelector("#answer p")),
  });
})()
"""


def probe(width: int) -> str:
    return PROBE.replace("__WIDTH__", str(int(width)))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (.ci/run installs Debian's chromium package)")
    b = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def check_page(browser: Browser, html: Path, width: int, height: int, shots: Path) -> dict:
    page = browser.render(html.resolve().as_uri(), width, height, probe(width), shots)
    p = page.probe
    assert page.console_errors == [], page.console_errors
    assert page.requests == [], f"the report fetched {page.requests}"
    assert p["images"] and all(i["ok"] for i in p["images"]), \
        [i["alt"] for i in p["images"] if not i["ok"]]
    assert p["scrollWidth"] <= p["innerWidth"], f"page overflows: {p['scrollWidth']} px wide"
    assert p["compact"] is not None, "no compact table"
    assert p["hiddenCells"] == 0 and p["wrapOverflow"] <= 0, f"compact table cut: {p}"
    assert p["compact"]["left"] >= 0 and p["compact"]["right"] <= p["innerWidth"]
    assert p["isCompact"], "the first table is not the compact comparison table"
    if width >= 1000:
        assert p["answer"]["bottom"] <= FIRST_SCREEN_PX, f"answer ends at {p['answer']}"
    assert all(s.is_file() and s.stat().st_size > 1000 for s in page.screenshots)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("width,height", VIEWPORTS)
@pytest.mark.parametrize("report", EXAMPLES, ids=["dropout", "one_at_a_time"])
def test_committed_example_reads_in_a_browser(browser, report: Path, width: int, height: int,
                                              tmp_path: Path) -> None:
    assert report.is_file(), f"missing committed example {report}"
    p = check_page(browser, report, width, height, tmp_path / f"{report.parent.name}-{width}")
    if width >= 1000:  # the finding and the whole compact table on the first screen
        assert p["compact"]["bottom"] <= FIRST_SCREEN_PX, p["compact"]


@pytest.mark.slow
@pytest.mark.parametrize("width,height", VIEWPORTS)
def test_freshly_built_report_reads_in_a_browser(browser, trained_study: Path, width: int,
                                                 height: int, tmp_path: Path) -> None:
    check_page(browser, trained_study / "report.html", width, height, tmp_path / f"fresh-{width}")


@pytest.mark.slow
@pytest.mark.parametrize("width,height", VIEWPORTS)
def test_index_has_no_overflow(browser, trained_study: Path, width: int, height: int,
                               tmp_path: Path) -> None:
    index = trained_study.parent / "index.html"
    page = browser.render(index.resolve().as_uri(), width, height, probe(width),
                          tmp_path / f"index-{width}")
    assert page.console_errors == [] and page.requests == []
    assert page.probe["scrollWidth"] <= page.probe["innerWidth"]


@pytest.mark.slow
def test_the_probe_catches_a_wide_table(browser, tmp_path: Path) -> None:
    """The checks can fail: a 20-column table and a wide figure overflow a phone screen."""
    cells = "".join(f"<td>column {i} 0.473 ± 0.012</td>" for i in range(20))
    page = tmp_path / "wide.html"
    page.write_text(f'<!DOCTYPE html><meta name="viewport" content="width=device-width">'
                    f'<div><table id="compact"><tr>{cells}</tr></table>'
                    f'</div><div style="width:1500px">wide</div>')
    p = browser.render(page.as_uri(), 390, 844, probe(390)).probe
    assert p["scrollWidth"] > p["innerWidth"]
    assert p["hiddenCells"] > 0
