"""JSON Schema (as pydantic writes it) -> the OpenAPI subset Gemini's ``parameters`` accept.

``FunctionDeclaration.parameters`` is a ``Schema`` object: ``type`` (upper case), ``format``,
``description``, ``nullable``, ``enum`` (strings), ``items``, ``properties``, ``required``,
``anyOf``, ``minItems``/``maxItems``, ``minimum``/``maximum``, ``minLength``/``maxLength``,
``pattern``, ``minProperties``/``maxProperties``, ``propertyOrdering``. Anything else is refused
with a 400 ("Unknown name ..."), so ``gemini_schema``:

* inlines ``$ref`` (``#/$defs/...``, ``#/definitions/...``; keys beside a ``$ref`` are kept);
  a recursive reference is cut at its second appearance to ``{"type": "OBJECT"}``;
* merges ``allOf``, turns ``oneOf`` into ``anyOf``, ``const`` into a one-value ``enum``;
* makes ``{"type": "null"}`` members and ``type: [..., "null"]`` into ``nullable: true``;
* keeps ``enum`` only for strings, and ``format`` only where Gemini knows it
  (``enum``/``date-time``, ``int32``/``int64``, ``float``/``double``); a dropped format or
  enum and a ``default`` are mentioned in the description instead;
* drops every other keyword (``title``, ``default``, ``additionalProperties``, ``examples``,
  ``exclusiveMinimum``, ``$schema``, ``discriminator``, ...).

Pure; no imports from the package.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["gemini_schema"]

_TYPES = {"string": "STRING", "integer": "INTEGER", "number": "NUMBER", "boolean": "BOOLEAN",
          "array": "ARRAY", "object": "OBJECT"}
_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}
_COPIED = ("minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
           "minProperties", "maxProperties", "propertyOrdering")
_MAX_DEPTH = 32


def gemini_schema(schema: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The Gemini ``parameters`` for a tool's JSON schema (an object schema; ``{}`` -> no properties)."""
    if not isinstance(schema, dict) or not schema:
        return {"type": "OBJECT", "properties": {}}
    defs: Dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
    out = _Converter(defs).convert(schema, ())
    if out.get("type") != "OBJECT":
        out = {"type": "OBJECT", "properties": {}}
    out.setdefault("properties", {})
    return out


class _Converter:
    def __init__(self, defs: Dict[str, Any]) -> None:
        self.defs = defs

    def convert(self, node: Any, seen: Tuple[str, ...]) -> Dict[str, Any]:
        if not isinstance(node, dict) or len(seen) > _MAX_DEPTH:
            return {}
        node = self._resolve(node, seen)
        if node is None:   # a recursive reference: cut here
            return {"type": "OBJECT", "properties": {}, "description": "(recursive structure)"}
        node, seen = node
        node = self._merge_all_of(node, seen)
        out: Dict[str, Any] = {}
        notes: List[str] = []
        nullable = False
        kind = node.get("type")
        if isinstance(kind, list):
            nullable = "null" in kind
            kinds = [k for k in kind if k != "null"]
            if len(kinds) > 1:
                out["anyOf"] = [self.convert(dict(node, type=k), seen) for k in kinds]
                kind = None
            else:
                kind = kinds[0] if kinds else None
        if kind == "null":
            nullable, kind = True, None
        members = node.get("anyOf") if isinstance(node.get("anyOf"), list) else node.get("oneOf")
        if isinstance(members, list):
            kept = [m for m in members if not (isinstance(m, dict) and m.get("type") == "null")]
            nullable = nullable or len(kept) < len(members)
            converted = [self.convert(m, seen) for m in kept]
            if len(converted) == 1:
                out.update(converted[0])   # Optional[X]: X, nullable
            elif converted:
                out["anyOf"] = converted
        if "const" in node and "enum" not in node:
            node = dict(node, enum=[node["const"]])
            if kind is None and isinstance(node["const"], str):
                kind = "string"
        if kind is None and "enum" in node and all(isinstance(v, str) for v in node["enum"] or [None]):
            kind = "string"
        if kind is None and isinstance(node.get("properties"), dict):
            kind = "object"
        gtype = _TYPES.get(kind) if isinstance(kind, str) else None
        if gtype:
            out["type"] = gtype
        description = node.get("description")
        self._enum(node, gtype, out, notes)
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt:
            if fmt in _FORMATS.get(gtype or "", ()):
                out["format"] = fmt
            else:
                notes.append(f"format: {fmt}")
        if gtype == "OBJECT" or isinstance(node.get("properties"), dict):
            props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
            out["properties"] = {name: self.convert(value, seen) for name, value in props.items()}
            required = [r for r in node.get("required") or [] if isinstance(r, str) and r in props]
            if required:
                out["required"] = required
        if gtype == "ARRAY":
            items = node.get("items")
            if isinstance(items, list):   # tuple form: not supported, take the first type
                items = items[0] if items else None
            out["items"] = self.convert(items, seen) if isinstance(items, dict) else {"type": "STRING"}
        for key in _COPIED:
            if key in node and key not in out:
                out[key] = node[key]
        if "default" in node:
            notes.append(f"default: {_short(node['default'])}")
        if isinstance(description, str) and description:
            out["description"] = description
        if notes:
            out["description"] = " ".join(filter(None, [out.get("description"), f"({'; '.join(notes)})"]))
        if nullable:
            out["nullable"] = True
        return out

    def _resolve(self, node: Dict[str, Any], seen: Tuple[str, ...]) -> Optional[Tuple[Dict[str, Any], Tuple[str, ...]]]:
        """``node`` with its ``$ref`` inlined (keys beside the ``$ref`` win); None if recursive."""
        while isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                return None
            target = self.defs.get(ref)
            extra = {k: v for k, v in node.items() if k != "$ref"}
            if not isinstance(target, dict):
                node = extra   # an unknown reference: keep what is beside it
                break
            seen = seen + (ref,)
            node = dict(target, **extra)
        return node, seen

    def _merge_all_of(self, node: Dict[str, Any], seen: Tuple[str, ...]) -> Dict[str, Any]:
        parts = node.get("allOf")
        if not isinstance(parts, list):
            return node
        merged: Dict[str, Any] = {}
        for part in parts:
            resolved = self._resolve(part, seen) if isinstance(part, dict) else None
            if resolved is None:
                continue
            part = self._merge_all_of(resolved[0], seen)
            props = dict(merged.get("properties") or {}, **(part.get("properties") or {}))
            required = list(merged.get("required") or []) + [r for r in part.get("required") or []
                                                            if r not in (merged.get("required") or [])]
            merged.update(part)
            if props:
                merged["properties"] = props
            if required:
                merged["required"] = required
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return dict(merged, **rest)

    @staticmethod
    def _enum(node: Dict[str, Any], gtype: Optional[str], out: Dict[str, Any], notes: List[str]) -> None:
        values = node.get("enum")
        if not isinstance(values, list) or not values:
            return
        if gtype == "STRING" and all(isinstance(v, str) for v in values):
            out["enum"] = list(values)
            out["format"] = "enum"
        else:   # Gemini takes string enums only
            notes.append("one of: " + ", ".join(_short(v) for v in values))


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
