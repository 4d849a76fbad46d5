"""The Jinja2 templates the HTML reports are rendered from (evaluation report, drift report, privacy
impact assessment).

The shipped templates are in ``include/templates/``, next to the package. A folder named by the
environment variable ``LLMOPS_TEMPLATES_DIR`` is searched first: a template copied there (under the
same name) and edited replaces the shipped one; every other template, the shared ``_base.html.j2``
and ``_macros.html.j2`` included, still comes from the shipped folder.

Autoescaping is on, so every value in a report's context is HTML-escaped unless the code that built
it marked it safe; an undefined name is an error rather than an empty string, so a template that
asks for something the report does not have fails loudly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

import llmops

__all__ = ["ENV_VAR", "TEMPLATES_DIR", "environment", "render", "search_path"]

ENV_VAR = "LLMOPS_TEMPLATES_DIR"
# include/templates: include/ is installed editable and copied whole into the images
TEMPLATES_DIR = Path(llmops.__file__).resolve().parents[1] / "templates"


def search_path() -> list[Path]:
    """The folders templates are looked up in, first match wins: ``$LLMOPS_TEMPLATES_DIR`` (when
    set), then the shipped ``include/templates``."""
    override = os.environ.get(ENV_VAR, "").strip()
    return [Path(override).expanduser(), TEMPLATES_DIR] if override else [TEMPLATES_DIR]


@lru_cache(maxsize=4)
def _environment(folders: tuple[str, ...]) -> jinja2.Environment:
    for folder in folders[:-1]:
        if not Path(folder).is_dir():
            raise NotADirectoryError(f"{ENV_VAR}={folder}: no such folder (it holds report templates "
                                     f"that replace those in {TEMPLATES_DIR})")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(list(folders)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def environment() -> jinja2.Environment:
    """The Jinja2 environment for the current search path (one per search path, cached)."""
    return _environment(tuple(str(p) for p in search_path()))


def render(name: str, context: Mapping[str, Any]) -> str:
    """Render the template ``name`` (e.g. ``"drift_report.html.j2"``) with ``context``.

    Raises :class:`jinja2.TemplateNotFound` naming the template and the folders searched when it
    (or a template it extends, includes or imports) is in none of them."""
    return environment().get_template(name).render(context)
