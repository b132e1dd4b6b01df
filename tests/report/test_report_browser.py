"""The report in a real browser (headless Chromium): the committed examples and a freshly built
one at desktop and phone sizes. No console errors, no network requests, every image loaded, no
horizontal overflow, the compact table whole; the answer on the first screen, the claim and
the compact table after it and the first figure within a screen of it; no column hidden
without a cue; and the reliability diagram of a constructed under-confident model drawn as
its legend says."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import Browser, find_chromium
from conftest import REPO

from harness.report import build_report

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
    answerEnd: box(document.querySelector("#answer")),
    claim: box(document.querySelector("#claim")),
    firstFigure: box(document.querySelector("figure")),
    firstFigureIsLead: !!document.querySelector("figure") &&
      document.querySelector("figure").classList.contains("lead"),
    // every table with a cell off screen, and whether its scroll box shows a cue
    hiddenTables: [...document.querySelectorAll("table")].map(t => {
      const off = [...t.querySelectorAll("th, td")].filter(c => {
        const r = c.getBoundingClientRect();
        return r.width > 0 && (r.right > W + 0.5 || r.left < -0.5); }).length;
      const w = t.closest(".table-wrap");
      const cue = !!w && getComputedStyle(w).overflowX === "auto" &&
        getComputedStyle(w).backgroundImage.includes("gradient") &&
        w.scrollWidth > w.clientWidth;
      return {id: t.id || t.className, off, cue};
    }).filter(t => t.off > 0),
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
    else:
        assert p["answer"]["top"] <= FIRST_SCREEN_PX, f"answer starts at {p['answer']}"
    # the order a reader meets them: answer, claim (if any), compact table, first figure
    if p["claim"] is not None:
        assert p["answerEnd"]["bottom"] <= p["claim"]["top"] < p["compact"]["top"], p
    # the forest plot follows the compact table: beside it on a wide screen, below on a phone
    assert p["firstFigureIsLead"] and p["compact"]["top"] <= p["firstFigure"]["top"]
    if width < 600:
        assert p["compact"]["bottom"] <= p["firstFigure"]["top"], p
    if width >= 1000:  # the first figure starts within a screen of the answer's end
        assert p["firstFigure"]["top"] <= p["answerEnd"]["bottom"] + height, \
            f"first figure at {p['firstFigure']['top']}, answer ends {p['answerEnd']['bottom']}"
    assert all(t["cue"] for t in p["hiddenTables"]), f"hidden columns, no cue: {p['hiddenTables']}"
    if width < 600:  # a phone stacks the detail tables: nothing hides at all
        assert p["hiddenTables"] == [], p["hiddenTables"]
    assert all(s.is_file() and s.stat().st_size > 1000 for s in page.screenshots)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("width,height", VIEWPORTS)
@pytest.mark.parametrize("report", EXAMPLES, ids=["dropout", "one_at_a_time"])
def test_committed_example_reads_in_a_browser(browser, report: Path, width: int, height: int,
                                              tmp_path: Path) -> None:
    assert report.is_file(), f"missing committed example {report}"
    p = check_page(browser, report, width, height, tmp_path / f"{report.parent.name}-{width}")
    if width >= 1000:  # the finding, the compact table and the first figure on the first screen
        assert p["compact"]["bottom"] <= FIRST_SCREEN_PX, p["compact"]
        assert p["firstFigure"]["top"] < FIRST_SCREEN_PX, p["firstFigure"]


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


# The reliability diagrams as drawn: each bar's top and each confidence mark's height on the
# screen, their painted colours, and the legend's swatches and words.
RELIABILITY_PROBE = """
(() => {
  const paint = (el, prop) => getComputedStyle(el)[prop];
  return JSON.stringify([...document.querySelectorAll("svg.reliability")].map(svg => ({
    title: svg.getAttribute("aria-label"),
    bars: [...svg.querySelectorAll(".acc-bar")].map(b => ({bin: b.dataset.bin,
      top: b.getBoundingClientRect().top, fill: paint(b, "fill")})),
    marks: [...svg.querySelectorAll(".conf-mark")].map(m => ({bin: m.dataset.bin,
      y: (m.getBoundingClientRect().top + m.getBoundingClientRect().bottom) / 2,
      stroke: paint(m, "stroke")})),
    legend: {acc: paint(svg.querySelector(".legend-acc"), "fill"),
             conf: paint(svg.querySelector(".legend-conf"), "stroke"),
             accText: svg.querySelector(".legend-acc-text").textContent,
             confText: svg.querySelector(".legend-conf-text").textContent,
             visible: svg.getBoundingClientRect().width > 100},
  })));
})()
"""


@pytest.fixture(scope="module")
def calibration_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_report_findings import calibration_study

    root = tmp_path_factory.mktemp("browser-calibration")
    return build_report(calibration_study(root / "label_smoothing")).html


@pytest.mark.slow
@pytest.mark.parametrize("width,height", VIEWPORTS)
def test_the_reliability_legend_matches_what_is_drawn(browser, calibration_report: Path,
                                                      width: int, height: int,
                                                      tmp_path: Path) -> None:
    """Label smoothing made the model under-confident: every confidence mark is drawn below
    its accuracy bar's top, in the colour the legend gives 'mean confidence', and the bars in
    the colour it gives 'accuracy'."""
    check_page(browser, calibration_report, width, height, tmp_path / f"calibration-{width}")
    page = browser.render(calibration_report.resolve().as_uri(), width, height,
                          RELIABILITY_PROBE)
    diagrams = {d["title"].split(":")[0]: d for d in page.probe}
    under = diagrams["label_smoothing epsilon = 0.3"]
    assert under["legend"]["visible"] and under["bars"]
    assert {b["bin"] for b in under["bars"]} == {m["bin"] for m in under["marks"]}
    tops = {b["bin"]: b["top"] for b in under["bars"]}
    for m in under["marks"]:
        assert m["y"] > tops[m["bin"]] + 1, (m, tops[m["bin"]])  # below: under-confident
    assert {b["fill"] for b in under["bars"]} == {under["legend"]["acc"]}
    assert {m["stroke"] for m in under["marks"]} == {under["legend"]["conf"]}
    assert under["legend"]["acc"] != under["legend"]["conf"]
    assert "accuracy" in under["legend"]["accText"]
    assert "confidence" in under["legend"]["confText"]


@pytest.mark.slow
def test_the_probe_catches_a_hidden_column_without_a_cue(browser, tmp_path: Path) -> None:
    """A table scrolled sideways in a plain box (no cue) is reported; the report's box is
    not."""
    cells = "".join(f"<td>column {i} 0.473 ± 0.012</td>" for i in range(12))
    for cls, cue in (("plain", False), ("table-wrap", True)):
        page = tmp_path / f"{cls}.html"
        style = ("<style>.plain { overflow-x: auto; }</style>" if cls == "plain" else
                 "<style>" + (ROOT / "harness/report/templates/_style.css").read_text()
                 + "</style>")
        page.write_text(f'<!DOCTYPE html><meta name="viewport" content="width=device-width">'
                        f'{style}<div class="{cls}"><table id="t"><tr>{cells}</tr></table>'
                        "</div>")
        hidden = browser.render(page.as_uri(), 390, 844, probe(390)).probe["hiddenTables"]
        assert hidden and all(t["cue"] is cue for t in hidden), hidden
