"""HTML pages for people with a browser (partner link pages, error pages): Jinja2, autoescaped."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True)
    )


def render_page(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


def wants_html(request: Request) -> bool:
    """A browser asking for a page: HTML listed in Accept, before any JSON."""
    accept = request.headers.get("accept", "")
    html, json = accept.find("text/html"), accept.find("json")
    return html >= 0 and (json < 0 or html < json)
