"""Tool schemas -> Gemini's OpenAPI subset (refs inlined, unsupported keywords dropped)."""
from __future__ import annotations

import enum
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, Field

from agentstream.models._gemini_schema import gemini_schema

#: the keywords Gemini's ``Schema`` object accepts (v1beta), as used here
ALLOWED = {"type", "format", "description", "nullable", "enum", "items", "properties", "required", "anyOf",
           "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
           "minProperties", "maxProperties", "propertyOrdering"}
TYPES = {"STRING", "INTEGER", "NUMBER", "BOOLEAN", "ARRAY", "OBJECT"}


def walk(node: Any, path: str = "$") -> List[str]:
    """Every problem Gemini would refuse, as 'path: problem'."""
    problems = []
    if not isinstance(node, dict):
        return [f"{path}: not an object"]
    for key in node:
        if key not in ALLOWED:
            problems.append(f"{path}: {key}")
    if "type" in node and node["type"] not in TYPES:
        problems.append(f"{path}: type {node['type']!r}")
    if "enum" in node and (node.get("type") != "STRING" or not all(isinstance(v, str) for v in node["enum"])):
        problems.append(f"{path}: non-string enum")
    for name, sub in (node.get("properties") or {}).items():
        problems += walk(sub, f"{path}.{name}")
    if "items" in node:
        problems += walk(node["items"], f"{path}[]")
    for i, sub in enumerate(node.get("anyOf") or []):
        problems += walk(sub, f"{path}|{i}")
    return problems


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    S = 1
    L = 3


class Address(BaseModel):
    """A postal address."""

    street: str = Field(description="Street and number")
    zip_code: Optional[str] = Field(None, pattern=r"^\d{5}$")


class Person(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    age: int = Field(3, ge=0, lt=150, description="Age in years")
    home: Address
    previous: List[Address] = []
    color: Color = Color.RED
    size: Size = Size.S
    kind: Literal["a", "b"] = "a"
    fixed: Literal["only"] = "only"
    either: Union[int, str] = 1
    tags: Dict[str, int] = {}
    email: str = Field("x@y.z", json_schema_extra={"format": "email"})
    friend: Optional["Person"] = None


def test_nested_pydantic_models_are_inlined_and_cleaned():
    out = gemini_schema(Person.model_json_schema())
    assert walk(out) == []
    assert out["type"] == "OBJECT" and out["required"] == ["name", "home"]
    props = out["properties"]
    home = props["home"]
    assert home["type"] == "OBJECT" and home["required"] == ["street"]
    assert home["properties"]["street"] == {"type": "STRING", "description": "Street and number"}
    assert home["properties"]["zip_code"]["nullable"] is True
    assert home["properties"]["zip_code"]["pattern"] == r"^\d{5}$"
    assert props["previous"]["items"]["properties"]["street"]["type"] == "STRING"
    assert props["color"]["enum"] == ["red", "blue"] and props["color"]["format"] == "enum"
    assert props["kind"]["enum"] == ["a", "b"] and props["fixed"]["enum"] == ["only"]
    assert props["size"]["type"] == "INTEGER" and "1, 3" in props["size"]["description"]   # enum -> text
    assert [m["type"] for m in props["either"]["anyOf"]] == ["INTEGER", "STRING"]
    assert (props["name"]["minLength"], props["name"]["maxLength"]) == (1, 50)
    assert props["age"]["minimum"] == 0 and "default: 3" in props["age"]["description"]
    assert "format: email" in props["email"]["description"]
    assert props["tags"]["type"] == "OBJECT"   # additionalProperties dropped
    friend = props["friend"]   # Person inside Person: cut at the second appearance
    assert friend["nullable"] is True and friend["type"] == "OBJECT" and friend["properties"] == {}
    assert "recursive" in friend["description"]


def test_type_lists_all_of_one_of_and_defs_spelling():
    schema = {
        "type": "object",
        "definitions": {"Base": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}},
        "properties": {
            "maybe": {"type": ["integer", "null"], "title": "Maybe", "examples": [1]},
            "multi": {"type": ["integer", "string"]},
            "merged": {"allOf": [{"$ref": "#/definitions/Base"},
                                 {"properties": {"b": {"type": "number", "exclusiveMinimum": 0}}}]},
            "one": {"oneOf": [{"type": "boolean"}, {"type": "string", "format": "date-time"}]},
            "const_only": {"const": "x"},
            "nothing": {},
        },
        "additionalProperties": False,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
    out = gemini_schema(schema)
    assert walk(out) == []
    props = out["properties"]
    assert props["maybe"] == {"type": "INTEGER", "nullable": True}
    assert [m["type"] for m in props["multi"]["anyOf"]] == ["INTEGER", "STRING"]
    merged = props["merged"]
    assert merged["type"] == "OBJECT" and set(merged["properties"]) == {"a", "b"} and merged["required"] == ["a"]
    assert props["one"]["anyOf"][1] == {"type": "STRING", "format": "date-time"}
    assert props["const_only"] == {"type": "STRING", "enum": ["x"], "format": "enum"}
    assert props["nothing"] == {}


def test_empty_and_non_object_schemas_become_an_empty_object():
    assert gemini_schema({}) == {"type": "OBJECT", "properties": {}}
    assert gemini_schema(None) == {"type": "OBJECT", "properties": {}}
    assert gemini_schema({"type": "object", "additionalProperties": False, "properties": {}}) == \
        {"type": "OBJECT", "properties": {}}


def test_a_real_tool_schema_passes():
    from agentstream._function_schema import function_schema

    def book(person: Person, when: Optional[str] = None, count: int = 1) -> str:
        """Book a table.

        Args:
            person: who books.
            when: ISO time.
            count: how many seats.
        """
        return "ok"

    out = gemini_schema(function_schema(book).json_schema)
    assert walk(out) == []
    assert out["properties"]["person"]["properties"]["home"]["type"] == "OBJECT"
    assert out["properties"]["count"]["description"].startswith("how many seats")
