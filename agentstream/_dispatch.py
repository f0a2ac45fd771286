"""Handlers: event kind -> the user's callables, called on the consuming thread."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from .messages import ToolCallPart

HANDLER_NAMES = ("on_text", "on_thinking", "on_tool_call", "on_tool_result", "on_cancel", "on_error", "on_event")

# kind -> (handler name, how to turn the event into the handler's argument)
_ROUTES: Dict[str, Tuple[str, Callable[[Any], Any]]] = {
    "text_delta": ("on_text", lambda e: e.text),
    "thinking_delta": ("on_thinking", lambda e: e.text),
    "tool_call_complete": ("on_tool_call", lambda e: ToolCallPart(e.tool_name, dict(e.args), e.tool_call_id)),
    "tool_executed": ("on_tool_result", lambda e: e),
    "cancelled": ("on_cancel", lambda e: e),
    "error": ("on_error", lambda e: e.error),
}


class Dispatcher:
    """Calls handlers for each event, in order (``on_event`` first).

    Handlers come as keyword callables and/or one ``handler`` object with
    methods of the same names. Return values are ignored.
    """

    def __init__(self, handler: Any = None, **callables: Optional[Callable[..., Any]]) -> None:
        chosen: Dict[str, List[Callable[..., Any]]] = {name: [] for name in HANDLER_NAMES}
        for name in HANDLER_NAMES:
            fn = callables.get(name)
            if fn is not None:
                if not callable(fn):
                    from .exceptions import UserError

                    raise UserError(f"{name} must be callable, got {type(fn).__name__}")
                chosen[name].append(fn)
            method = getattr(handler, name, None) if handler is not None else None
            if callable(method):
                chosen[name].append(method)
        self._on_event = chosen["on_event"]
        self._routes: Dict[str, Tuple[List[Callable[..., Any]], Callable[[Any], Any]]] = {
            kind: (chosen[name], convert) for kind, (name, convert) in _ROUTES.items() if chosen[name]}
        self._listeners: List[Callable[[Any], Any]] = []
        self.empty = not self._on_event and not self._routes

    @property
    def watches_tool_calls(self) -> bool:
        """True when a handler must see each ToolCallComplete before the tool runs."""
        return bool(self._on_event or self._listeners or "tool_call_complete" in self._routes)

    def add_listener(self, fn: Callable[[Any], Any]) -> None:
        """Also call ``fn(event)`` for every event, after the routed handlers."""
        self._listeners.append(fn)
        self.empty = False

    def __call__(self, event: Any) -> None:
        for fn in self._on_event:
            fn(event)
        route = self._routes.get(event.kind)
        if route is not None:
            fns, convert = route
            value = convert(event)
            for fn in fns:
                fn(value)
        for fn in self._listeners:
            fn(event)
