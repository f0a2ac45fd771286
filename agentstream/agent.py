"""Agent: model + instructions + tools; ``run_stream`` and ``run``."""
from __future__ import annotations

import inspect
import uuid
from typing import Any, Callable, Dict, Generic, List, Optional, Sequence, TypeVar, Union, overload

from ._cancel import CancelToken, link_cancel
from ._context import ContextManager
from ._dispatch import Dispatcher
from ._loop import RunConfig
from ._output import OutputSchema
from ._worker import RunShared
from .exceptions import UserError
from .messages import ModelRequest, ModelResponse
from .models import Model, infer_model
from .result import RunResult
from .settings import Compression, ModelSettings
from .stream import AgentStream
from .tools import Tool, tools_by_name
from .usage import UsageLimits

__all__ = ["Agent"]

DepsT = TypeVar("DepsT")
OutputT = TypeVar("OutputT")
F = TypeVar("F", bound=Callable[..., Any])


class Agent(Generic[DepsT, OutputT]):
    """A model with instructions and tools, run synchronously with live events.

    Usage::

        agent = Agent("openai:gpt-4o-mini", system_prompt="Be terse.", tools=[get_weather])
        for event in agent.run_stream("Weather in Paris?"):
            ...
        result = agent.run("Weather in Paris?")   # blocking; handlers still fire
    """

    def __init__(self, model: Union[str, Model], *, system_prompt: Union[str, Sequence[str]] = (),
                 tools: Sequence[Any] = (), model_settings: Union[ModelSettings, Dict[str, Any], None] = None,
                 usage_limits: Optional[UsageLimits] = None, output_type: Any = str,
                 deps_type: Any = type(None), retries: int = 1, name: Optional[str] = None,
                 history_processors: Optional[Sequence[Callable[..., Any]]] = None,
                 max_tool_workers: int = 8) -> None:
        self.model: Model = infer_model(model)
        self.name = name
        self.system_prompts: List[str] = [system_prompt] if isinstance(system_prompt, str) else list(system_prompt)
        if not all(isinstance(p, str) for p in self.system_prompts):
            raise UserError("system_prompt must be a str or a list of str")
        self._dynamic_prompts: List[Callable[..., Any]] = []
        self._tools: Dict[str, Tool] = tools_by_name(tools)
        self.model_settings = ModelSettings.coerce(model_settings)
        if usage_limits is not None and not isinstance(usage_limits, UsageLimits):
            raise UserError(f"usage_limits must be a UsageLimits, got {type(usage_limits).__name__}")
        self.usage_limits = usage_limits or UsageLimits()
        self.output_type = output_type
        self._output = OutputSchema.build(output_type)
        if self._output.tool_name in self._tools:
            raise UserError(f"a tool may not be named {self._output.tool_name!r}: it is the output tool")
        self.deps_type = deps_type
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise UserError(f"retries must be an int >= 0, got {retries!r}")
        self.retries = retries
        self.history_processors = list(history_processors or [])
        if not isinstance(max_tool_workers, int) or max_tool_workers < 1:
            raise UserError(f"max_tool_workers must be an int >= 1, got {max_tool_workers!r}")
        self.max_tool_workers = max_tool_workers

    # -- registration ----------------------------------------------------------------
    @property
    def tools(self) -> Dict[str, Tool]:
        return dict(self._tools)

    def _register(self, func: Any, takes_ctx: bool, name: Optional[str], retries: Optional[int]) -> Any:
        def register(fn: F) -> F:
            tool = Tool.from_function(fn, takes_ctx=takes_ctx, name=name, retries=retries)
            if tool.name in self._tools or tool.name == self._output.tool_name:
                raise UserError(f"duplicate tool name {tool.name!r}: each tool needs a unique name")
            self._tools[tool.name] = tool
            return fn
        return register(func) if func is not None else register

    @overload
    def tool(self, func: F) -> F: ...
    @overload
    def tool(self, *, name: Optional[str] = None, retries: Optional[int] = None) -> Callable[[F], F]: ...

    def tool(self, func: Any = None, *, name: Optional[str] = None, retries: Optional[int] = None) -> Any:
        """Register a tool whose first parameter is a ``RunContext``."""
        return self._register(func, True, name, retries)

    @overload
    def tool_plain(self, func: F) -> F: ...
    @overload
    def tool_plain(self, *, name: Optional[str] = None, retries: Optional[int] = None) -> Callable[[F], F]: ...

    def tool_plain(self, func: Any = None, *, name: Optional[str] = None, retries: Optional[int] = None) -> Any:
        """Register a tool that takes no ``RunContext``."""
        return self._register(func, False, name, retries)

    def system_prompt(self, func: F) -> F:
        """Register a dynamic system prompt, called with ``ctx`` (or nothing) at run start."""
        if not callable(func):
            raise UserError("@agent.system_prompt decorates a function")
        try:
            takes_ctx = len(inspect.signature(func).parameters) > 0
        except (TypeError, ValueError):
            takes_ctx = True
        self._dynamic_prompts.append(func if takes_ctx else (lambda ctx, _f=func: _f()))
        return func

    # -- running -------------------------------------------------------------------------
    def run_stream(self, prompt: Optional[str] = None, *, deps: Any = None,
                   message_history: Optional[Sequence[Any]] = None,
                   model_settings: Union[ModelSettings, Dict[str, Any], None] = None,
                   usage_limits: Optional[UsageLimits] = None, compression: Optional[Compression] = None,
                   cancel_token: Any = None,
                   on_text: Optional[Callable[[str], Any]] = None,
                   on_thinking: Optional[Callable[[str], Any]] = None,
                   on_tool_call: Optional[Callable[[Any], Any]] = None,
                   on_tool_result: Optional[Callable[[Any], Any]] = None,
                   on_cancel: Optional[Callable[[Any], Any]] = None,
                   on_error: Optional[Callable[[BaseException], Any]] = None,
                   on_event: Optional[Callable[[Any], Any]] = None,
                   handler: Any = None, model: Union[str, Model, None] = None) -> AgentStream:
        """Start a run on a worker thread and return its ``AgentStream`` at once."""
        if prompt is not None and not isinstance(prompt, str):
            raise UserError(f"prompt must be a str, got {type(prompt).__name__}")
        history = _history_list(message_history)
        for i, message in enumerate(history):
            if not isinstance(message, (ModelRequest, ModelResponse)):
                raise UserError(f"message_history[{i}] is a {type(message).__name__}, not a ModelRequest or "
                                "ModelResponse (load stored JSON with messages_from_json)")
        if prompt is None and not history:
            raise UserError("run_stream needs a prompt (or a message_history to continue)")
        if usage_limits is not None and not isinstance(usage_limits, UsageLimits):
            raise UserError(f"usage_limits must be a UsageLimits, got {type(usage_limits).__name__}")
        if compression is not None and not isinstance(compression, Compression):
            raise UserError(f"compression must be a Compression, got {type(compression).__name__}")
        if cancel_token is not None and not (hasattr(cancel_token, "is_set") and hasattr(cancel_token, "wait")):
            raise UserError("cancel_token must be a CancelToken or a threading.Event")
        run_model = infer_model(model) if model is not None else self.model
        dispatcher = Dispatcher(handler, on_text=on_text, on_thinking=on_thinking, on_tool_call=on_tool_call,
                                on_tool_result=on_tool_result, on_cancel=on_cancel, on_error=on_error,
                                on_event=on_event)
        cfg = RunConfig(
            run_id=uuid.uuid4().hex, model=run_model, prompt=prompt, history=history,
            system_prompts=self.system_prompts, dynamic_prompts=list(self._dynamic_prompts),
            tools=dict(self._tools), output=self._output,
            settings=self.model_settings.merge(ModelSettings.coerce(model_settings) if model_settings else None),
            limits=[self.usage_limits] + ([usage_limits] if usage_limits else []),
            context=ContextManager(run_model, compression, self.history_processors),
            deps=deps, default_retries=self.retries, max_tool_workers=self.max_tool_workers)
        run_cancel = CancelToken()
        shared = RunShared(cfg, run_cancel)
        unlink = link_cancel(cancel_token, run_cancel, shared.done)
        return AgentStream(shared, dispatcher, unlink)

    def run(self, prompt: Optional[str] = None, **kwargs: Any) -> RunResult:
        """Blocking run: ``run_stream(...).result()``; handlers still fire."""
        with self.run_stream(prompt, **kwargs) as stream:
            return stream.result()

    def __repr__(self) -> str:
        return f"Agent(model={self.model!r}, tools={sorted(self._tools)})"


def _history_list(history: Any) -> List[Any]:
    """``message_history`` as a list, with the fix spelled out for the common mistakes."""
    if history is None:
        return []
    if isinstance(history, RunResult):
        hint: Optional[str] = "result.messages (or result.new_messages())"
    elif isinstance(history, AgentStream):
        hint = "stream.result().messages"
    elif hasattr(history, "messages") and not isinstance(history, (list, tuple)):
        hint = "its .messages"   # RunCancelled, a Cancelled event
    else:
        hint = None
    if hint is not None:
        raise UserError(f"message_history got a {type(history).__name__}, not a list of messages: pass {hint}")
    if isinstance(history, (str, bytes, dict)) or not hasattr(history, "__iter__"):
        raise UserError(f"message_history must be a list of messages, got {type(history).__name__} "
                        "(load stored JSON with messages_from_json)")
    return list(history)
