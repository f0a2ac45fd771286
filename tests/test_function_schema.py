"""Tests for agentstream._function_schema.function_schema / FunctionSchema."""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import pathlib
from typing import Annotated, Any, Dict, List, Literal, Optional

import pydantic
import pytest
from pydantic import BaseModel, Field

from agentstream._function_schema import FunctionSchema, ToolDefinitionError, function_schema
from agentstream._run_context import RunContext


def _load_future_tools():
    path = pathlib.Path(__file__).with_name("_future_tools.py")
    spec = importlib.util.spec_from_file_location("_agentstream_future_tools", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


future_tools = _load_future_tools()


def _ctx(deps: Any = None) -> RunContext:
    return RunContext(deps=deps, run_id="run-1", cancel_token=None, usage=None)


def get_weather(city: str, unit: Literal["c", "f"] = "c", days: Optional[int] = None) -> str:
    """Get the weather for a city.

    Args:
        city: The city name.
        unit: Temperature unit.

    Returns:
        A short report.
    """
    return f"{city}/{unit}/{days}"


def test_google_docstring_schema_with_literal_and_default():
    fs = function_schema(get_weather)
    assert fs.name == "get_weather"
    assert fs.description == "Get the weather for a city."
    assert fs.takes_ctx is False
    assert fs.json_schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city name."},
            "unit": {"enum": ["c", "f"], "type": "string", "default": "c", "description": "Temperature unit."},
            "days": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    json.dumps(fs.json_schema)  # must be JSON-serialisable for the providers


def test_name_and_description_overrides():
    fs = function_schema(get_weather, name="weather-v2", description="Custom.")
    assert (fs.name, fs.description) == ("weather-v2", "Custom.")


def test_no_parameters_and_no_docstring():
    def ping():
        return "pong"

    fs = function_schema(ping)
    assert fs.description == ""
    assert fs.json_schema == {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    assert fs.validate(None) == {}
    assert fs.call(None, {}) == "pong"


def numpy_tool(a: int, b: float = 1.5) -> float:
    """Multiply.

    Parameters
    ----------
    a : int
        First factor.
    b : float
        Second factor.
    """
    return a * b


def sphinx_tool(query: str, limit: int = 10) -> List[str]:
    """Search.

    :param query: What to look for.
    :param int limit: Maximum number
        of hits.
    :returns: hits
    """
    return []


@pytest.mark.parametrize(
    "func, expected",
    [
        (numpy_tool, {"a": "First factor.", "b": "Second factor."}),
        (sphinx_tool, {"query": "What to look for.", "limit": "Maximum number of hits."}),
    ],
)
def test_numpy_and_sphinx_descriptions_go_into_properties(func, expected):
    fs = function_schema(func)
    props = fs.json_schema["properties"]
    assert {name: prop["description"] for name, prop in props.items()} == expected
    assert fs.description in ("Multiply.", "Search.")


def test_annotated_field_description_wins_over_docstring():
    def f(x: Annotated[int, Field(description="from Field", ge=0)], y: int = Field(5, description="y desc")):
        """F.

        Args:
            x: from docstring.
        """

    fs = function_schema(f)
    props = fs.json_schema["properties"]
    assert props["x"] == {"type": "integer", "minimum": 0, "description": "from Field"}
    assert props["y"] == {"type": "integer", "default": 5, "description": "y desc"}
    assert fs.json_schema["required"] == ["x"]
    with pytest.raises(pydantic.ValidationError):
        fs.validate({"y": 1})  # x is required
    with pytest.raises(pydantic.ValidationError):
        fs.validate({"x": -1})  # the Field's ge=0 is enforced
    assert fs.validate({"x": 2}) == {"x": 2, "y": 5}


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    width: int
    label: str = "box"


def test_nested_model_dataclass_and_list_params():
    def draw(points: List[Point], box: Box, weights: Dict[str, float]) -> int:
        """Draw.

        Args:
            points: The points.
        """
        return len(points)

    fs = function_schema(draw)
    schema = fs.json_schema
    assert "title" not in schema
    assert set(schema["$defs"]) == {"Point", "Box"}
    assert schema["properties"]["points"]["items"] == {"$ref": "#/$defs/Point"}
    assert schema["properties"]["points"]["description"] == "The points."
    assert schema["required"] == ["points", "box", "weights"]
    kwargs = fs.validate('{"points": [{"x": 1, "y": "2"}], "box": {"width": 3}, "weights": {"a": 1}}')
    assert kwargs["points"] == [Point(x=1, y=2)]
    assert kwargs["box"] == Box(width=3, label="box")
    assert kwargs["weights"] == {"a": 1.0}
    assert fs.call(None, kwargs) == 1


def test_parameter_names_clashing_with_basemodel_attributes():
    def f(json: str, model_config: int, schema: bool = False):
        return (json, model_config, schema)

    fs = function_schema(f)
    assert list(fs.json_schema["properties"]) == ["json", "model_config", "schema"]
    kwargs = fs.validate({"json": "j", "model_config": "4"})
    assert fs.call(None, kwargs) == ("j", 4, False)


# --- RunContext detection ---------------------------------------------------


def ctx_tool(ctx: RunContext[int], n: int) -> int:
    return ctx.deps + n


def plain_ctx_tool(ctx: RunContext, n: int) -> int:
    return ctx.deps + n


@pytest.mark.parametrize("func", [ctx_tool, plain_ctx_tool])
def test_run_context_detected_and_excluded_from_schema(func):
    fs = function_schema(func)
    assert fs.takes_ctx is True
    assert list(fs.json_schema["properties"]) == ["n"]
    assert fs.call(_ctx(deps=10), fs.validate({"n": 5})) == 15


def test_run_context_detected_with_future_annotations():
    fs = function_schema(future_tools.with_ctx)
    assert fs.takes_ctx is True
    assert fs.json_schema["properties"]["xs"] == {
        "type": "array", "items": {"type": "integer"}, "description": "Numbers to add."
    }
    assert fs.json_schema["required"] == ["xs"]
    assert fs.call(_ctx(deps=1), fs.validate('{"xs": [1, 2], "label": "s"}')) == "s:4"


def test_unresolvable_run_context_annotation_falls_back_to_name():
    fs = function_schema(future_tools.with_hidden_ctx)
    assert fs.takes_ctx is True
    assert list(fs.json_schema["properties"]) == ["n"]
    assert fs.call(_ctx(deps=2), fs.validate({"n": "3"})) == 5


def test_future_annotations_without_ctx():
    fs = function_schema(future_tools.without_ctx)
    assert fs.takes_ctx is False
    assert fs.json_schema["properties"] == {"n": {"type": "integer"}}


def test_takes_ctx_true_forces_first_param_as_ctx():
    def f(c, n: int):
        return (c, n)

    fs = function_schema(f, takes_ctx=True)
    assert fs.takes_ctx is True
    assert list(fs.json_schema["properties"]) == ["n"]
    assert fs.call("the-ctx", {"n": 1}) == ("the-ctx", 1)


def test_takes_ctx_false_with_run_context_param_is_an_error():
    with pytest.raises(ToolDefinitionError, match="ctx_tool.*takes_ctx=False"):
        function_schema(ctx_tool, takes_ctx=False)


def test_keyword_only_ctx_is_passed_by_keyword():
    def f(*, ctx: RunContext[Any], n: int):
        return (ctx.run_id, n)

    fs = function_schema(f)
    assert fs.call(_ctx(), {"n": 2}) == ("run-1", 2)


# --- validation ---------------------------------------------------------------


def count(n: int, flag: bool = False) -> int:
    return n


@pytest.fixture(scope="module")
def count_schema() -> FunctionSchema:
    return function_schema(count)


def test_validate_lax_coercion(count_schema):
    assert count_schema.validate({"n": "3"}) == {"n": 3, "flag": False}
    assert count_schema.validate({"n": 3.0, "flag": "true"}) == {"n": 3, "flag": True}
    with pytest.raises(pydantic.ValidationError):
        count_schema.validate({"n": 3.5})  # lax mode does not truncate floats


def test_validate_wrong_type_names_field(count_schema):
    with pytest.raises(pydantic.ValidationError) as info:
        count_schema.validate({"n": "three"})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("n",)]
    assert "n" in str(info.value)


def test_validate_missing_and_extra_arguments(count_schema):
    with pytest.raises(pydantic.ValidationError) as info:
        count_schema.validate({"flag": True, "bogus": 1})
    assert {(e["loc"], e["type"]) for e in info.value.errors()} == {
        (("n",), "missing"), (("bogus",), "extra_forbidden")
    }


def test_validate_json_strings(count_schema):
    assert count_schema.validate('{"n": 7}') == {"n": 7, "flag": False}
    with pytest.raises(pydantic.ValidationError):
        count_schema.validate("")  # "" -> {} -> n is missing


@pytest.mark.parametrize("args", ["", "   ", None])
def test_empty_args_mean_no_arguments(args):
    fs = function_schema(lambda: None, name="noop")
    assert fs.validate(args) == {}


@pytest.mark.parametrize("args, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ("3", "must be a JSON object, got int"),
    ("null", "must be a JSON object, got NoneType"),
])
def test_bad_json_raises_value_error(count_schema, args, match):
    with pytest.raises(ValueError, match=match) as info:
        count_schema.validate(args)
    assert not isinstance(info.value, pydantic.ValidationError)
    assert "count" in str(info.value)


# --- unsupported definitions ----------------------------------------------------


def star_args(*items: int):
    pass


def star_kwargs(a: int, **options: Any):
    pass


def pos_only(a: int, /, b: int):
    pass


def late_ctx(n: int, ctx: RunContext[int]):
    pass


async def async_tool(n: int):
    pass


async def async_gen_tool(n: int):
    yield n


class _Unsupported:
    pass


def bad_type(x: _Unsupported):
    pass


@pytest.mark.parametrize("func, match", [
    (star_args, r"star_args.*\*items"),
    (star_kwargs, r"star_kwargs.*\*\*options"),
    (pos_only, r"pos_only.*positional-only.*'a'"),
    (late_ctx, r"late_ctx.*RunContext.*'ctx'.*first"),
    (async_tool, r"async_tool.*async.*sync-only"),
    (async_gen_tool, r"async_gen_tool.*async"),
    (bad_type, r"bad_type.*unsupported"),
])
def test_unsupported_signatures(func, match):
    with pytest.raises(ToolDefinitionError, match=match):
        function_schema(func)


def test_tool_definition_error_is_a_type_error():
    assert issubclass(ToolDefinitionError, TypeError)


def test_non_callable_rejected():
    with pytest.raises(ToolDefinitionError, match="not callable"):
        function_schema(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "dots.not.ok", "x" * 65, "ünïcode"])
def test_invalid_names_rejected(name):
    with pytest.raises(ToolDefinitionError, match="name"):
        function_schema(count, name=name)


def test_lambda_needs_a_name():
    with pytest.raises(ToolDefinitionError, match="<lambda>"):
        function_schema(lambda x: x)
    assert function_schema(lambda x: x, name="identity").name == "identity"


def test_positional_only_ctx_is_allowed():
    def f(ctx: RunContext[int], /, n: int):
        return ctx.deps * n

    fs = function_schema(f)
    assert fs.call(_ctx(deps=3), {"n": 2}) == 6


def test_callable_object_and_missing_annotation():
    class Adder:
        """Adds a constant."""

        def __call__(self, n, k: int = 1):
            return n + k

    fs = function_schema(Adder(), name="adder")
    assert fs.description == "Adds a constant."
    assert fs.json_schema["properties"]["n"] == {}  # no annotation: any value
    assert fs.validate({"n": [1], "k": "2"}) == {"n": [1], "k": 2}
    assert fs.call(None, {"n": 1, "k": 2}) == 3


def test_partial_uses_wrapped_function_hints_and_docs():
    fs = function_schema(functools.partial(get_weather, unit="f"), name="weather_f")
    assert fs.description == "Get the weather for a city."
    assert fs.json_schema["properties"]["city"]["description"] == "The city name."
    assert fs.call(None, fs.validate({"city": "Oslo"})) == "Oslo/f/None"
