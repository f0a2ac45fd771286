"""The agent loop: one implementation behind ``run_stream`` and ``run``.

An explicit state machine over ``RunState``::

    start -> RequestModel -> HandleResponse -> (CallTools -> RequestModel ...) -> Done

Each step function returns the next step. The loop knows nothing of
threads or queues: it gets ``emit(event, wait=False)`` and the run's
``CancelToken``, and raises ``CancelledRun`` at a checkpoint once the token
is set. ``_worker`` turns what happens here into the terminal event.
"""
from __future__ import annotations

import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

import pydantic
from pydantic_core import to_jsonable_python

from ._accumulate import ResponseBuilder
from ._channel import Batch
from ._output import OutputSchema
from ._run_context import RunContext
from .events import (OutputReady, RequestStart, ResponseComplete, Retrying, RunStart,
                     ToolCallComplete, ToolExecuted)
from .exceptions import ModelRetry, UnexpectedModelBehavior, UsageLimitExceeded
from .messages import (ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart,
                       ToolCallPart, ToolReturnPart, UserPromptPart)
from .models._base import Model, ModelRequestParameters, StreamContext, StreamReset
from .settings import ModelSettings
from .tools import Tool
from .usage import Usage, UsageLimits

log = logging.getLogger("agentstream")

CANCELLED_RESULT = "Tool call cancelled before it ran: the run was cancelled."
NOT_RUN_RESULT = "Tool not executed: a final result was already given."


class CancelledRun(Exception):
    """Raised inside the loop at a checkpoint after the cancel token was set."""


@dataclass
class RunConfig:
    """Everything a run needs, fixed at its start."""

    run_id: str
    model: Model
    prompt: Optional[str]
    history: List[Any]
    system_prompts: List[str]
    dynamic_prompts: List[Callable[..., Any]]
    tools: Dict[str, Tool]
    output: OutputSchema
    settings: ModelSettings
    limits: List[UsageLimits]
    context: Any                   # _context.ContextManager
    deps: Any = None
    default_retries: int = 1
    max_tool_workers: int = 8


@dataclass
class RunState:
    """What the run has so far; read by the worker to build Cancelled / errors."""

    messages: List[Any] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    step: int = 0
    retries: Dict[str, int] = field(default_factory=dict)
    new_from: int = 0                                  # index of the first new message
    builder: Optional[ResponseBuilder] = None          # the response being streamed
    pending_calls: List[ToolCallPart] = field(default_factory=list)
    done_results: Dict[str, Any] = field(default_factory=dict)  # call id -> part, this step
    text_chunks: List[str] = field(default_factory=list)
    thinking_chunks: List[str] = field(default_factory=list)
    last_prompt_tokens: Optional[int] = None
    request_tokens: int = 0   # ContextInfo.estimated_tokens of the request being made


# --- the steps ---------------------------------------------------------------------

@dataclass
class RequestModel:
    pass


@dataclass
class HandleResponse:
    response: ModelResponse
    invalid_args: Dict[str, str]


@dataclass
class CallTools:
    calls: List[ToolCallPart]
    invalid_args: Dict[str, str]


@dataclass
class Done:
    output: Any


Step = Union[RequestModel, HandleResponse, CallTools, Done]


class AgentLoop:
    """Drives one run. ``run()`` returns the output or raises."""

    def __init__(self, cfg: RunConfig, state: RunState, emit: Callable[..., None], cancel: Any) -> None:
        self.cfg = cfg
        self.state = state
        self.emit = emit
        self.cancel = cancel

    def run(self) -> Any:
        self.emit(RunStart(self.cfg.run_id))
        self._start()
        step: Step = RequestModel()
        while not isinstance(step, Done):
            self.checkpoint()
            if isinstance(step, RequestModel):
                step = self._request_model()
            elif isinstance(step, HandleResponse):
                step = self._handle_response(step)
            else:
                step = self._call_tools(step)
        self.emit(OutputReady(step.output))
        return step.output

    def checkpoint(self) -> None:
        if self.cancel.is_set():
            raise CancelledRun()

    def ctx(self, **kw: Any) -> RunContext:
        return RunContext(deps=self.cfg.deps, run_id=self.cfg.run_id, cancel_token=self.cancel,
                          usage=self.state.usage, messages=self.state.messages, step=self.state.step, **kw)

    # -- start: history + system prompts + user prompt --------------------------
    def _start(self) -> None:
        cfg, state = self.cfg, self.state
        state.messages = list(cfg.history)
        state.new_from = len(state.messages)
        parts: List[Any] = []
        has_system = any(isinstance(p, SystemPromptPart) for m in state.messages
                         if isinstance(m, ModelRequest) for p in m.parts)
        if not has_system:
            parts += [SystemPromptPart(text) for text in cfg.system_prompts]
            for fn in cfg.dynamic_prompts:
                text = fn(self.ctx())
                if text:
                    parts.append(SystemPromptPart(str(text)))
        if cfg.prompt is not None:
            parts.append(UserPromptPart(cfg.prompt))
        if parts:
            state.messages.append(ModelRequest(parts))

    # -- one model request ------------------------------------------------------
    def _request_model(self) -> Step:
        cfg, state = self.cfg, self.state
        for limits in cfg.limits:
            if limits.request_limit is not None and state.usage.requests + 1 > limits.request_limit:
                raise UsageLimitExceeded(
                    f"the next request would exceed request_limit={limits.request_limit}",
                    limit="request_limit", value=state.usage.requests + 1)
        state.step += 1
        self.emit(RequestStart(state.step))
        params = ModelRequestParameters(
            tools=[t.definition() for t in cfg.tools.values()],
            output_tool=cfg.output.tool_definition, allow_text_output=cfg.output.allow_text)
        state.messages = cfg.context.prepare(state.messages, params, self)
        self.checkpoint()

        builder = state.builder = ResponseBuilder(cfg.model.model_name, getattr(cfg.model, "system", None))
        feed, emit, text_chunks, thinking_chunks = builder.feed, self.emit, state.text_chunks, state.thinking_chunks
        is_set = self.cancel.is_set
        stream_ctx = StreamContext(
            cancel=self.cancel,
            on_retry=lambda attempt, delay, error: emit(Retrying(attempt, delay, error)),
            output_started=lambda: builder.emitted > 0)
        items = cfg.model.stream(state.messages, cfg.settings, params, stream_ctx)
        marks = (sum(map(len, text_chunks)), sum(map(len, thinking_chunks)))  # for a StreamReset
        try:
            for item in items:  # an item, or a Batch: the items of one network read
                if is_set():
                    raise CancelledRun()
                if type(item) is Batch:
                    batch = Batch([e for one in item for e in feed(one)])
                elif type(item) is StreamReset:
                    builder = self._reset_response(builder, item, marks)
                    feed = builder.feed
                    continue
                else:
                    batch = feed(item)
                    if len(batch) > 1:
                        batch = Batch(batch)
                if batch:
                    for event in batch:
                        kind = event.kind
                        if kind == "text_delta":
                            text_chunks.append(event.text)
                        elif kind == "thinking_delta":
                            thinking_chunks.append(event.text)
                    emit(batch[0] if len(batch) == 1 else batch)  # one queue hand-off per read
                    if len(text_chunks) > 4096:  # memory: a long answer as one string, not 1M small ones
                        text_chunks[:] = ["".join(text_chunks)]
                    if len(thinking_chunks) > 4096:
                        thinking_chunks[:] = ["".join(thinking_chunks)]
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's finally closes its HTTP response now, not at GC
        self.checkpoint()

        response = builder.build()
        if builder.usage is None:  # the server sent no usage: estimate it, flagged
            response.usage = Usage(input_tokens=state.request_tokens,
                                   output_tokens=estimate_output_tokens(builder, response), estimated=True)
        response.usage.requests = 1
        state.builder = None
        state.messages.append(response)
        state.pending_calls, state.done_results = response.tool_calls, {}  # answered if the run ends now
        state.usage.add(response.usage)
        if response.usage.input_tokens and builder.usage is not None:   # reported, not our estimate
            state.last_prompt_tokens = response.usage.input_tokens
        self.emit(ResponseComplete(state.step, response.finish_reason, response.usage))
        self._check_token_limits()
        return HandleResponse(response, dict(builder.invalid_args))

    def _reset_response(self, builder: ResponseBuilder, reset: StreamReset, marks: Any) -> ResponseBuilder:
        """The response was cut after output and starts again: count the void attempt's usage
        (estimated where the server sent none), drop its text and thinking, tell the consumer."""
        state = self.state
        partial = builder.build(partial=True)
        usage = builder.usage.copy() if builder.usage is not None else Usage(input_tokens=state.request_tokens)
        usage.output_tokens = max(usage.output_tokens, estimate_output_tokens(builder, partial))
        usage.estimated, usage.requests = True, 1
        state.usage.add(usage)
        for chunks, mark in zip((state.text_chunks, state.thinking_chunks), marks):
            kept = "".join(chunks)[:mark]
            chunks[:] = [kept] if kept else []
        state.builder = ResponseBuilder(builder.model_name, builder.provider_name)
        self.emit(Retrying(reset.attempt, reset.delay, reset.error, reset=True))
        return state.builder

    def _check_token_limits(self) -> None:
        usage = self.state.usage
        for limits in self.cfg.limits:
            for name, value in (("input_tokens_limit", usage.input_tokens),
                                ("output_tokens_limit", usage.output_tokens),
                                ("total_tokens_limit", usage.total_tokens)):
                bound = getattr(limits, name)
                if bound is not None and value > bound:
                    raise UsageLimitExceeded(f"{name}={bound} exceeded: the run used {value} tokens",
                                             limit=name, value=value)

    # -- what the response asks for -----------------------------------------------
    def _handle_response(self, step: HandleResponse) -> Step:
        response, output = step.response, self.cfg.output
        calls = response.tool_calls
        if calls:
            return CallTools(calls, step.invalid_args)
        if response.finish_reason == "pause_turn":  # Anthropic: a long server-tool turn, send it back to go on
            return RequestModel()
        if not response.text and response.finish_reason not in (None, "stop", "length", "end_turn"):
            raise UnexpectedModelBehavior(
                f"the model returned an empty response (finish_reason={response.finish_reason!r})")
        # structured output may also come as JSON text (the providers' JSON mode)
        return Done(output.from_text(response.text)) if output.is_text else self._text_output(response)

    def _text_output(self, response: ModelResponse) -> Step:
        try:
            return Done(self.cfg.output.from_text(response.text))
        except (pydantic.ValidationError, ValueError) as exc:
            return self._retry_output(None, None, f"Your answer did not validate: {exc}")

    def _retry_output(self, name: Optional[str], call_id: Optional[str], message: str) -> Step:
        self._count_retry(name or "final_result", self.cfg.default_retries)
        self.state.messages.append(ModelRequest([RetryPromptPart(message, name, call_id)]))
        return RequestModel()

    def _count_retry(self, name: str, budget: int) -> int:
        count = self.state.retries.get(name, 0) + 1
        if count > budget:
            raise UnexpectedModelBehavior(f"tool {name!r} exceeded its retry budget of {budget}: "
                                          "the model kept sending invalid calls")
        self.state.retries[name] = count
        return count

    # -- tools ------------------------------------------------------------------
    def _call_tools(self, step: CallTools) -> Step:
        state, cfg = self.state, self.cfg
        calls = step.calls
        state.pending_calls = list(calls)
        state.done_results = {}
        for i, call in enumerate(calls):  # handlers see every call before any tool runs
            self.emit(ToolCallComplete(call.tool_name, call.tool_call_id, dict(call.args), call.raw_args),
                      wait=i == len(calls) - 1)
        self.checkpoint()
        output_call = next((c for c in calls if c.tool_name == cfg.output.tool_name), None)
        if output_call is not None:
            return self._finish_with_output_tool(output_call, calls, step.invalid_args)
        for limits in cfg.limits:  # every call counts, as in usage.tool_calls (failed ones too)
            bound = limits.tool_calls_limit
            if bound is not None and state.usage.tool_calls + len(calls) > bound:
                raise UsageLimitExceeded(
                    f"running {len(calls)} more tool call(s) would exceed tool_calls_limit={bound}",
                    limit="tool_calls_limit", value=state.usage.tool_calls + len(calls))
        results = self._execute_all(calls, step.invalid_args)
        self._update_retries(results)
        state.messages.append(ModelRequest(results))
        state.pending_calls = []
        state.done_results = {}
        return RequestModel()

    def _finish_with_output_tool(self, call: ToolCallPart, calls: List[ToolCallPart],
                                 invalid: Dict[str, str]) -> Step:
        try:
            if call.tool_call_id in invalid:
                raise ValueError(invalid[call.tool_call_id])
            value = self.cfg.output.from_args(call.args)
        except (pydantic.ValidationError, ValueError) as exc:
            self._count_retry(call.tool_name, self.cfg.default_retries)
            text = _error_text(exc)
            final: Any = (RetryPromptPart(text, call.tool_name, call.tool_call_id), False, text, text)
            step: Step = RequestModel()
        else:
            done = "Final result processed."
            final = (ToolReturnPart(call.tool_name, done, call.tool_call_id), True, None, done)
            step = Done(value)
        parts = []
        for c in calls:  # the other calls of this response are answered, not run
            outcome = final if c is call else (
                ToolReturnPart(c.tool_name, NOT_RUN_RESULT, c.tool_call_id, is_error=True),
                False, NOT_RUN_RESULT, NOT_RUN_RESULT)
            self._report(c, outcome, count=False)
            parts.append(outcome[0])
        self.state.messages.append(ModelRequest(parts))
        self.state.pending_calls = []
        return step

    def _execute_all(self, calls: List[ToolCallPart], invalid: Dict[str, str]) -> List[Any]:
        workers = min(self.cfg.max_tool_workers, len(calls))
        if workers <= 1:
            outcomes = []
            for call in calls:
                self.checkpoint()
                outcomes.append(self._execute(call, invalid))
                self._report(call, outcomes[-1])
            return [o[0] for o in outcomes]
        parts: List[Any] = []
        with ThreadPoolExecutor(workers, thread_name_prefix=f"agentstream-tool-{self.cfg.run_id[:8]}") as pool:
            futures = [pool.submit(self._execute_if_not_cancelled, call, invalid) for call in calls]
            try:
                for call, future in zip(calls, futures):
                    outcome = future.result()
                    if outcome is None:
                        raise CancelledRun()
                    self._report(call, outcome)
                    parts.append(outcome[0])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return parts

    def _update_retries(self, results: List[Any]) -> None:
        """One retry per tool per response that needs one; a tool that worked starts afresh."""
        retried = {p.tool_name for p in results if isinstance(p, RetryPromptPart)}
        for name in sorted(retried):
            tool = self.cfg.tools[name]
            self._count_retry(name, tool.max_retries if tool.max_retries is not None else self.cfg.default_retries)
        for part in results:
            if isinstance(part, ToolReturnPart) and not part.is_error and part.tool_name not in retried:
                self.state.retries.pop(part.tool_name, None)

    def _execute_if_not_cancelled(self, call: ToolCallPart, invalid: Dict[str, str]) -> Any:
        if self.cancel.is_set():
            return None
        return self._execute(call, invalid)

    def _report(self, call: ToolCallPart, outcome: Any, count: bool = True) -> None:
        part, success, error, result = outcome
        self.state.done_results[call.tool_call_id] = part
        if count:  # every call the loop tried to execute: run, raised, refused (unknown tool, bad args)
            self.state.usage.tool_calls += 1
        self.emit(ToolExecuted(call.tool_name, call.tool_call_id, success, error, result))

    def _execute(self, call: ToolCallPart, invalid: Dict[str, str]) -> Any:
        """Run one call. Returns (message part, success, error text, result)."""
        tool = self.cfg.tools.get(call.tool_name)
        if tool is None:
            names = ", ".join(sorted(self.cfg.tools)) or "none"
            error = f"Unknown tool name: {call.tool_name!r}. Available tools: {names}."
            return ToolReturnPart(call.tool_name, error, call.tool_call_id, is_error=True), False, error, error
        try:
            if call.tool_call_id in invalid:
                raise ValueError(invalid[call.tool_call_id])
            kwargs = tool.schema.validate(call.args)
        except (pydantic.ValidationError, ValueError) as exc:
            return self._retry_tool(tool, call, _error_text(exc))
        ctx = self.ctx(tool_name=tool.name, tool_call_id=call.tool_call_id,
                       retry=self.state.retries.get(tool.name, 0))
        try:
            result = tool.schema.call(ctx, kwargs)
        except ModelRetry as exc:
            return self._retry_tool(tool, call, exc.message)
        except Exception as exc:
            return self._tool_failed(call, exc)
        # the history keeps a JSON-safe copy (any object a tool returns can be stored and sent);
        # ToolExecuted.result keeps the object itself
        content = result if isinstance(result, (str, int, float, bool, type(None))) \
            else to_jsonable_python(result, fallback=str)
        return ToolReturnPart(tool.name, content, call.tool_call_id), True, None, result

    def _retry_tool(self, tool: Tool, call: ToolCallPart, text: str) -> Any:
        return RetryPromptPart(text, tool.name, call.tool_call_id), False, text, text

    def _tool_failed(self, call: ToolCallPart, exc: BaseException) -> Any:
        log.debug("tool %s raised", call.tool_name, exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
        return ToolReturnPart(call.tool_name, f"Error: {error}", call.tool_call_id, is_error=True), False, error, error


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "input": e.get("input")}
                   for e in exc.errors(include_url=False)]
        return f"{exc.error_count()} validation error(s): " + json.dumps(details, default=repr)
    return str(exc)


def estimate_output_tokens(builder: ResponseBuilder, response: Optional[ModelResponse] = None) -> int:
    """About 4 characters a token: text, thinking and (of a whole ``response``) tool calls."""
    chars = len(builder.text) + len(builder.thinking)
    for call in response.tool_calls if response is not None else ():
        chars += len(call.tool_name) + len(json.dumps(call.args, default=str))
    return math.ceil(chars / 4)


def close_calls(calls: List[ToolCallPart], done: Dict[str, Any]) -> List[Any]:
    """A result for every call: the real one if the tool ran, else a "cancelled" error result."""
    return [done.get(c.tool_call_id) or ToolReturnPart(c.tool_name, CANCELLED_RESULT, c.tool_call_id, is_error=True)
            for c in calls]
