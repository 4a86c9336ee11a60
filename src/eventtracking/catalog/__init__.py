"""The event catalogue: documentation of every type, what was stored, and the drift."""

from __future__ import annotations

from .build import Catalogue, TypeEntry, build_catalogue, diff, mask_pii
from .html import render_html
from .render import render_json_schema, render_markdown

__all__ = [
    "Catalogue",
    "TypeEntry",
    "build_catalogue",
    "diff",
    "mask_pii",
    "render_html",
    "render_json_schema",
    "render_markdown",
]
