"""Jinja2 rendering of the report templates in harness/report/templates/."""

from __future__ import annotations

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
