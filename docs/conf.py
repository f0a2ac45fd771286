"""Sphinx configuration. ``make docs`` builds with -W: every warning is an error."""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, List

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

sys.path.insert(0, os.path.abspath(".."))

import agentstream  # noqa: E402

project = "agentstream"
author = "agentstream contributors"
release = version = agentstream.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: List[str] = []
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False


class _Table(SphinxDirective):
    """A ``list-table`` built from the code, so the page never drifts from it."""

    def rows(self) -> List[List[str]]:  # first row: the header
        raise NotImplementedError

    def run(self) -> List[Any]:
        lines = [".. list-table::", "   :header-rows: 1", ""]
        for row in self.rows():
            lines += [f"   * - {row[0]}"] + [f"     - {cell}" for cell in row[1:]]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="<generated table>"), self.content_offset, container)
        return container.children


class ProvidersTable(_Table):
    """``agentstream models``, as a table (from ``agentstream.models._registry``)."""

    def rows(self) -> List[List[str]]:
        from agentstream._cli import provider_rows

        table = [["Prefix", "What", "API key variable", "Default base URL (variable to override)"]]
        for r in provider_rows():
            key = f"``{r['key_env']}``{'' if r['key_required'] else ' (optional)'}" if r["key_env"] else "none"
            url = f"``{r['base_url']}``" if r["base_url"] else "none"
            if r["base_url_env"]:
                url += f" (``{r['base_url_env']}``)"
            table.append([f"``{r['prefix']}``", r["description"], key, url])
        return table


class EventsTable(_Table):
    """Every event of ``agentstream.events``: its ``kind`` and fields."""

    def rows(self) -> List[List[str]]:
        from agentstream import events

        table = [["Event", "``kind``", "Fields"]]
        for name, cls in vars(events).items():  # in the order the module defines them: a run's order
            if isinstance(cls, type) and issubclass(cls, events.Event) and cls is not events.Event:
                fields = ", ".join(f"``{f.name}``" for f in dataclasses.fields(cls))
                table.append([f":class:`~agentstream.events.{name}`", f"``{cls.kind}``", fields or "none"])
        return table


def setup(app: Any) -> None:
    app.add_directive("agentstream-providers", ProvidersTable)
    app.add_directive("agentstream-events", EventsTable)
