"""Jinja2 rendering of the report templates in harness/report/templates/."""

from __future__ import annotations

import html as html_lib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"),
                                            default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = md_cell
    return env


def md_cell(value: Any) -> str:
    """A value safe inside a Markdown table cell (pipes escaped, one line)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


TABLE = re.compile(r"<table>(.*?)</table>", re.S)
HEAD_CELL = re.compile(r"<th[^>]*>(.*?)</th>", re.S)
ROW = re.compile(r"<tr>(.*?)</tr>", re.S)


def stackable(markup: str) -> str:
    """Markdown-rendered tables as the report's detail tables: in a scroll box, and each cell
    named by its column (data-label) so a phone can stack a row into label: value lines."""
    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        head, _, rest = body.partition("</thead>")
        names = [html_lib.escape(re.sub(r"<[^>]+>", "", h), quote=True)
                 for h in HEAD_CELL.findall(head)]

        def row(r: re.Match[str]) -> str:
            cells = iter(names)
            return "<tr>" + re.sub(r"<td", lambda _: f'<td data-label="{next(cells, "")}"',
                                   r.group(1)) + "</tr>"

        return (f'<div class="table-wrap"><table class="detail stack">{head}</thead>'
                f"{ROW.sub(row, rest)}</table></div>")

    return TABLE.sub(one, markup)
