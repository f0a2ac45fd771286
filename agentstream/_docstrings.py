"""Docstring parsing for tool descriptions.

``parse_docstring`` splits a docstring into its free-text description and a
``{parameter: description}`` mapping. It understands Google style (``Args:``),
NumPy style (``Parameters`` + dashes) and Sphinx/reST style (``:param x:``).
Anything in other sections (Returns, Raises, Examples, ...) is dropped.
"""
from __future__ import annotations

import inspect
import re
from typing import Dict, List, Optional, Tuple

__all__ = ["parse_docstring"]

# Google-style section headers ("Args:") that may end the description.
_GOOGLE_SECTIONS = {
    "args", "arguments", "parameters", "params", "param",
    "keyword args", "keyword arguments", "keyword parameters", "kwargs",
    "other args", "other arguments", "other parameters", "other params",
    "returns", "return", "yields", "yield", "raises", "raise", "except",
    "exceptions", "warns", "examples", "example", "notes", "note",
    "attributes", "methods", "see also", "references", "todo", "warning",
    "warnings", "tip", "hint", "important", "caution", "danger",
    "attention", "receives", "receive",
}
# Sections (Google or NumPy) whose entries are parameters.
_PARAM_SECTIONS = {
    "args", "arguments", "parameters", "params", "param",
    "keyword args", "keyword arguments", "keyword parameters", "kwargs",
    "other args", "other arguments", "other parameters", "other params",
}
_SPHINX_PARAM_FIELDS = {"param", "parameter", "arg", "argument", "key", "keyword"}

_GOOGLE_HEADER = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s*:\s*$")
_NUMPY_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")
_GOOGLE_PARAM = re.compile(r"^\*{0,2}(\w+)\s*(?:\((.*?)\))?\s*:\s*(.*)$")
_NUMPY_PARAM = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?$")
_SPHINX_FIELD = re.compile(r"^:([A-Za-z_]+)((?:\s+[^:]*?)?)\s*:\s*(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(lines: List[str]) -> str:
    """Join description lines: lines of a paragraph with spaces, paragraphs with a blank line."""
    paragraphs: List[str] = []
    current: List[str] = []
    for line in lines:
        text = line.strip()
        if text:
            current.append(text)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


def _is_numpy_header(lines: List[str], i: int) -> bool:
    return (
        i + 1 < len(lines)
        and bool(lines[i].strip())
        and not _NUMPY_UNDERLINE.match(lines[i])
        and bool(_NUMPY_UNDERLINE.match(lines[i + 1]))
    )


def _parse_google_params(body: List[str], out: Dict[str, str]) -> None:
    base: Optional[int] = None
    name: Optional[str] = None
    desc: List[str] = []
    for line in body:
        if not line.strip():
            desc.append("")
            continue
        if base is None:
            base = _indent(line)
        if _indent(line) <= base:  # a new entry
            if name is not None:
                out[name] = _join(desc)
            match = _GOOGLE_PARAM.match(line.strip())
            name = match.group(1) if match else None
            desc = [match.group(3) or ""] if match else []
        else:
            desc.append(line)
    if name is not None:
        out[name] = _join(desc)


def _parse_numpy_params(body: List[str], out: Dict[str, str]) -> None:
    base: Optional[int] = None
    names: List[str] = []
    desc: List[str] = []

    def flush() -> None:
        for n in names:
            out[n] = _join(desc)

    for line in body:
        if not line.strip():
            desc.append("")
            continue
        if base is None:
            base = _indent(line)
        if _indent(line) <= base:
            flush()
            match = _NUMPY_PARAM.match(line.strip())
            names = [n.strip().lstrip("*") for n in match.group(1).split(",")] if match else []
            desc = []
        else:
            desc.append(line)
    flush()


def parse_docstring(doc: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """Return ``(description, {param_name: param_description})`` for a docstring.

    ``doc`` may be None or empty, giving ``("", {})``. The docstring is dedented
    with ``inspect.cleandoc``; the description is the text before the first
    recognised section, stripped.
    """
    if not doc or not doc.strip():
        return "", {}
    lines = inspect.cleandoc(doc).expandtabs().splitlines()
    description: List[str] = []
    params: Dict[str, str] = {}
    in_description = True
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        indent = _indent(line)

        if _is_numpy_header(lines, i):  # "Parameters\n----------"
            in_description = False
            section = stripped.lower()
            j = i + 2
            while j < n and not _is_numpy_header(lines, j):
                j += 1
            if section in _PARAM_SECTIONS:
                _parse_numpy_params(lines[i + 2 : j], params)
            i = j
            continue

        header = _GOOGLE_HEADER.match(stripped)
        if header and header.group(1).lower() in _GOOGLE_SECTIONS:  # "Args:"
            in_description = False
            j = i + 1
            while j < n and (not lines[j].strip() or _indent(lines[j]) > indent):
                j += 1
            if header.group(1).lower() in _PARAM_SECTIONS:
                _parse_google_params(lines[i + 1 : j], params)
            i = j
            continue

        field = _SPHINX_FIELD.match(stripped) if stripped.startswith(":") else None
        if field:  # ":param x: ..." and other reST fields
            in_description = False
            j = i + 1
            while j < n and (not lines[j].strip() or _indent(lines[j]) > indent):
                if not lines[j].strip() and (j + 1 >= n or _indent(lines[j + 1]) <= indent):
                    break  # a blank line followed by a dedent ends the field
                j += 1
            words = field.group(2).split()
            if field.group(1).lower() in _SPHINX_PARAM_FIELDS and words:
                params[words[-1].lstrip("*")] = _join([field.group(3) or ""] + lines[i + 1 : j])
            i = j
            continue

        if in_description:
            description.append(line)
        i += 1

    return "\n".join(description).strip(), params
