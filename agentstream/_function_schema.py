"""Turn a plain Python function into a tool definition.

``function_schema(fn)`` inspects the signature, type hints and docstring of
``fn`` and returns a ``FunctionSchema``: the tool name, description, JSON schema
of the arguments, whether the first parameter is a ``RunContext``, and a
pydantic model (built once) used to validate the model's arguments per call.
"""
from __future__ import annotations

import functools
import inspect
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Dict, List, Optional, Tuple, Union

import pydantic
from pydantic import ConfigDict, Field
from pydantic.fields import FieldInfo

from ._docstrings import parse_docstring
from ._run_context import RunContext

__all__ = ["FunctionSchema", "ToolDefinitionError", "function_schema"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_RUN_CONTEXT_STR_RE = re.compile(r"(^|[^\w])RunContext($|[^\w])")
_MODEL_CONFIG = ConfigDict(extra="forbid", protected_namespaces=())


class ToolDefinitionError(TypeError):
    """A function cannot be used as a tool (bad signature, name or types)."""


@dataclass(frozen=True)
class FunctionSchema:
    """Everything needed to expose ``function`` as a tool and call it."""

    name: str
    description: str
    json_schema: Dict[str, Any]
    takes_ctx: bool
    function: Callable[..., Any]
    # Internals: the pydantic model validating the arguments, its
    # (field name, parameter name) pairs, and the ctx keyword if keyword-only.
    _model: Any = field(default=None, repr=False, compare=False)
    _fields: Tuple[Tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    _ctx_keyword: Optional[str] = field(default=None, repr=False, compare=False)

    def validate(self, args: Union[str, Dict[str, Any], None]) -> Dict[str, Any]:
        """Validate the model's arguments; return keyword arguments for ``call``.

        ``args`` is a dict or a JSON object string (``None``/``""`` mean no
        arguments). Raises ``ValueError`` if the string is not a JSON object and
        ``pydantic.ValidationError`` if the arguments do not fit the signature.
        """
        if args is None or (isinstance(args, str) and not args.strip()):
            data: Any = {}
        elif isinstance(args, str):
            try:
                data = json.loads(args)
            except ValueError as e:
                raise ValueError(f"arguments for tool {self.name!r} are not valid JSON: {e}") from None
        else:
            data = args
        if not isinstance(data, dict):
            raise ValueError(
                f"arguments for tool {self.name!r} must be a JSON object, got {type(data).__name__}"
            )
        validated = self._model.model_validate(data)
        return {param: getattr(validated, fname) for fname, param in self._fields}

    def call(self, ctx: Any, kwargs: Dict[str, Any]) -> Any:
        """Call the function with validated ``kwargs`` (and ``ctx`` if it takes one)."""
        if not self.takes_ctx:
            return self.function(**kwargs)
        if self._ctx_keyword is not None:
            return self.function(**{self._ctx_keyword: ctx}, **kwargs)
        return self.function(ctx, **kwargs)


def _is_run_context(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return bool(_RUN_CONTEXT_STR_RE.search(annotation))
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation is RunContext or typing.get_origin(annotation) is RunContext:
        return True
    try:  # on Python < 3.11 isclass(list[int]) is True but issubclass() rejects it
        return inspect.isclass(annotation) and issubclass(annotation, RunContext)
    except TypeError:
        return False


def _resolve_hints(source: Any, params: Dict[str, inspect.Parameter]) -> Dict[str, Any]:
    """Type hints of ``params``; unresolvable string annotations are kept as strings."""
    try:
        return typing.get_type_hints(source, include_extras=True)
    except Exception:  # some annotation cannot be resolved; go one by one
        pass
    globalns = getattr(inspect.unwrap(source), "__globals__", {})
    hints: Dict[str, Any] = {}
    for pname, param in params.items():
        if param.annotation is inspect.Parameter.empty:
            continue
        shim = type("_Shim", (), {"__annotations__": {pname: param.annotation}})
        try:
            hints[pname] = typing.get_type_hints(shim, globalns, include_extras=True)[pname]
        except Exception:
            hints[pname] = param.annotation
    return hints


def function_schema(
    function: Callable[..., Any],
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    takes_ctx: Optional[bool] = None,
) -> FunctionSchema:
    """Build the ``FunctionSchema`` of ``function``; raise ``ToolDefinitionError`` if unsupported."""
    if not callable(function):
        raise ToolDefinitionError(f"tool {function!r} is not callable")
    source: Any = function.func if isinstance(function, functools.partial) else function
    if not (inspect.isroutine(source) or inspect.isclass(source)):
        source = source.__call__  # a callable object
    elif inspect.isclass(source):
        source = source.__init__
    fname = name if name is not None else getattr(function, "__name__", None)
    label = repr(fname or function)
    if fname is None:
        raise ToolDefinitionError(f"tool {function!r} has no __name__; pass name=...")
    if not _NAME_RE.match(fname):
        raise ToolDefinitionError(
            f"tool name {fname!r} is invalid: it must be 1-64 characters of a-z, A-Z, 0-9, '_' or '-' (pass name=...)"
        )
    if (
        inspect.iscoroutinefunction(function)
        or inspect.isasyncgenfunction(function)
        or inspect.iscoroutinefunction(source)
        or inspect.isasyncgenfunction(source)
    ):
        raise ToolDefinitionError(
            f"tool {label} is an async function; agentstream is sync-only, define it with a plain 'def'"
        )
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as e:
        raise ToolDefinitionError(f"cannot read the signature of tool {label}: {e}") from None
    params = dict(signature.parameters)
    hints = _resolve_hints(source, params)
    plist = list(params.values())

    def annotation(p: inspect.Parameter) -> Any:
        return hints.get(p.name, p.annotation)

    takes_ctx_arg = takes_ctx
    if takes_ctx is None:
        takes_ctx = bool(plist) and _is_run_context(annotation(plist[0]))
    ctx_keyword: Optional[str] = None
    if takes_ctx:
        if not plist or plist[0].kind in (plist[0].VAR_POSITIONAL, plist[0].VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {label} has takes_ctx=True but no first parameter for the RunContext")
        first_ann = annotation(plist[0])
        if first_ann not in (inspect.Parameter.empty, Any, object) and not _is_run_context(first_ann):
            raise ToolDefinitionError(
                f"tool {label} takes a RunContext first (as @agent.tool does), but its first parameter "
                f"{plist[0].name!r} is annotated {first_ann!r}; register it with @agent.tool_plain instead")
        if plist[0].kind is plist[0].KEYWORD_ONLY:
            ctx_keyword = plist[0].name
        plist = plist[1:]

    definitions: Dict[str, Any] = {}
    fields: List[Tuple[str, str]] = []
    for i, p in enumerate(plist):
        if p.kind is p.VAR_POSITIONAL or p.kind is p.VAR_KEYWORD:
            star = "*" if p.kind is p.VAR_POSITIONAL else "**"
            raise ToolDefinitionError(f"tool {label}: parameter {star}{p.name} is not supported (*args/**kwargs)")
        if p.kind is p.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"tool {label}: positional-only parameter {p.name!r} is not supported")
        ann = annotation(p)
        if _is_run_context(ann):
            problem = "takes_ctx=False was given" if i == 0 and takes_ctx_arg is False else "it is not first"
            raise ToolDefinitionError(
                f"tool {label}: RunContext parameter {p.name!r} is not supported here ({problem});"
                " a RunContext must be the first parameter"
            )
        if isinstance(ann, str):
            raise ToolDefinitionError(f"tool {label}: cannot resolve annotation {ann!r} of parameter {p.name!r}")
        if ann is inspect.Parameter.empty:
            ann = Any
        fname_i = f"p{i}"  # internal names avoid clashes with BaseModel attributes; alias = real name
        if isinstance(p.default, FieldInfo):  # def f(x: int = Field(3, description=...))
            definitions[fname_i] = (Annotated[ann, p.default], Field(alias=p.name))
        else:
            default = ... if p.default is inspect.Parameter.empty else p.default
            definitions[fname_i] = (ann, Field(default, alias=p.name))
        fields.append((fname_i, p.name))

    try:
        model = pydantic.create_model(fname, __config__=_MODEL_CONFIG, **definitions)
        schema = model.model_json_schema()
    except Exception as e:
        raise ToolDefinitionError(f"tool {label}: unsupported parameter types: {e}") from e

    if isinstance(function, functools.partial):
        doc = inspect.getdoc(function.func)
    elif inspect.isroutine(function) or inspect.isclass(function):
        doc = inspect.getdoc(function)
    else:  # a callable object: its own __call__'s docstring, else its class's
        call_doc = getattr(type(function).__call__, "__doc__", None)
        doc = inspect.cleandoc(call_doc) if call_doc and "__call__" in vars(type(function)) else None
        doc = doc or inspect.getdoc(function)
    doc_description, param_docs = parse_docstring(doc)
    properties: Dict[str, Any] = schema.get("properties", {})
    for fname_i, pname in fields:
        prop = properties.get(pname)
        if prop is None:
            continue
        if model.model_fields[fname_i].title is None:
            prop.pop("title", None)
        if "description" not in prop and param_docs.get(pname):
            prop["description"] = param_docs[pname]

    json_schema: Dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": schema.get("required", []),
        "additionalProperties": False,
    }
    if "$defs" in schema:
        json_schema["$defs"] = schema["$defs"]
    return FunctionSchema(
        name=fname,
        description=doc_description if description is None else description,
        json_schema=json_schema,
        takes_ctx=takes_ctx,
        function=function,
        _model=model,
        _fields=tuple(fields),
        _ctx_keyword=ctx_keyword,
    )
