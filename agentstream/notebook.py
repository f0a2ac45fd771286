"""Jupyter: show a running ``AgentStream`` live, as Markdown, in the cell that started it.

Usage::

    from agentstream.notebook import show

    stream = agent.run_stream("Weather in Paris?")
    show(stream)                 # returns at once; the output below the cell keeps updating
    ...
    result = stream.result()     # in this cell or a later one

``show`` consumes the stream on its background dispatcher thread
(``stream.start()``; your handlers still run there, in order), so the kernel
stays free: the Stop button (``pip install -e ".[notebook]"`` from a checkout, for
ipywidgets) cancels the run. The answer is re-rendered at most ``1 /
interval`` times a second, tool calls appear as they run, and the last
rendering happens before ``stream.result()`` returns.

Output never lands in another cell: everything is displayed once, from the
cell's own thread, and later changes are ``update_display_data`` messages
for that display id, sent with the parent header of the cell that called
``show`` (through ipykernel's ``set_thread_parent`` where it exists). No
asyncio is involved.
"""
from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .events import Cancelled, Error, RunComplete

__all__ = ["NotebookView", "show", "watch"]

log = logging.getLogger("agentstream")
RUNNING = "*running…*"


def _code(text: str) -> str:
    """``text`` as Markdown inline code (on one line), whatever backticks it holds."""
    text = " ".join(text.split())
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if len(fence) > 1 else f"`{text}`"


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class _Tool:
    __slots__ = ("name", "call_id", "args", "outcome")

    def __init__(self, name: str, call_id: str, args: Any) -> None:
        self.name, self.call_id, self.args = name, call_id, args
        self.outcome: Optional[str] = None

    def markdown(self) -> str:
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in self.args.items())
        return f"> 🔧 {_code(f'{self.name}({_short(args)})')} {self.outcome or '… running'}"


class NotebookView:
    """The live rendering of one stream. Made by ``show()``; you rarely build it yourself.

    ``publish(markdown)`` is called with the whole Markdown each time it
    changes, at most once per ``interval`` seconds (plus once at the end), from
    one thread at a time. ``stop_button`` is the ipywidgets ``Button`` (or None).
    """

    def __init__(self, stream: Any, publish: Callable[[str], None], interval: float = 0.1,
                 stop_button: Any = None, on_finish: Optional[Callable[[Any], None]] = None) -> None:
        self.stream = stream
        self.stop_button = stop_button
        self.interval = interval
        self._publish = publish
        self._on_finish = on_finish
        self._lock = threading.Lock()           # the blocks below
        self._publish_lock = threading.Lock()   # one publish at a time, never a stale one after a newer
        self._blocks: List[Any] = []            # str (a run of text) or _Tool, in stream order
        self._tools: Dict[str, _Tool] = {}
        self._thinking: List[str] = []
        self._mark: Any = (0, -1, 0)   # (blocks, length of the last text block, thinking) at request_start
        self._footer = RUNNING
        self._version = 0
        self._published = -1
        self._last = 0.0
        self._started = time.monotonic()
        self._wake = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._throttle, daemon=True,
                                        name=f"agentstream-notebook-{getattr(stream, 'run_id', '')[:8]}")
        if stop_button is not None:
            stop_button.on_click(lambda _button: self.stop())

    # -- control -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel the run (what the Stop button does)."""
        if self._finished.is_set():
            return
        if self.stop_button is not None:
            self.stop_button.disabled = True
            self.stop_button.description = "Stopping…"
        self.stream.cancel()

    def markdown(self) -> str:
        """The Markdown as it stands now."""
        with self._lock:
            parts = []
            if self._thinking:
                parts.append("<details><summary>Thinking</summary>\n\n"
                             f"{html.escape(''.join(self._thinking))}\n\n</details>")
            for block in self._blocks:
                parts.append(block.markdown() if isinstance(block, _Tool) else block)
            parts.append(self._footer)
            return "\n\n".join(p for p in parts if p)

    def _ipython_display_(self) -> None:
        """Already on display: showing ``show()``'s return value again adds nothing."""

    # -- events (called on the stream's dispatcher thread) -----------------------------------------
    def handle(self, event: Any) -> None:
        try:
            self._apply(event)
        except Exception:  # rendering trouble must never cancel the run
            log.debug("notebook view: event %r not rendered", event, exc_info=True)

    def _apply(self, event: Any) -> None:
        kind = event.kind
        with self._lock:
            if kind == "text_delta":
                if self._blocks and isinstance(self._blocks[-1], str):
                    self._blocks[-1] += event.text
                else:
                    self._blocks.append(event.text)
            elif kind == "thinking_delta":
                self._thinking.append(event.text)
            elif kind == "request_start":   # where this response begins, for a reset
                last = self._blocks[-1] if self._blocks else None
                self._mark = (len(self._blocks), len(last) if isinstance(last, str) else -1,
                              sum(map(len, self._thinking)))
                return
            elif kind == "retrying" and getattr(event, "reset", False):
                self._drop_response()
            elif kind == "tool_call_complete":
                tool = _Tool(event.tool_name, event.tool_call_id, dict(event.args))
                self._tools[event.tool_call_id] = tool
                self._blocks.append(tool)
            elif kind == "tool_executed" and event.tool_call_id in self._tools:
                outcome = f"→ {_code(_short(event.result))}" if event.success else f"⚠ {_short(event.error)}"
                self._tools[event.tool_call_id].outcome = outcome
            elif isinstance(event, (RunComplete, Cancelled, Error)):
                self._footer = self._final_footer(event)
            else:
                return
            self._version += 1
        if isinstance(event, (RunComplete, Cancelled, Error)):
            self._finish(event)
        else:
            self._wake.set()

    def _drop_response(self) -> None:
        """The response is sent again (``Retrying(reset=True)``): remove what it showed."""
        blocks, text_len, thinking_len = self._mark
        del self._blocks[blocks:]
        if text_len >= 0 and self._blocks:
            self._blocks[-1] = self._blocks[-1][:text_len]
        kept = "".join(self._thinking)[:thinking_len]
        self._thinking[:] = [kept] if kept else []

    def _final_footer(self, event: Any) -> str:
        elapsed = time.monotonic() - self._started
        if isinstance(event, Error):
            return f"**Error:** {_short(event.message, 500)}"
        if isinstance(event, Cancelled):
            return f"*cancelled after {elapsed:.1f} s — kept {len(event.partial_text)} characters*"
        u = event.usage
        return (f"*done in {elapsed:.1f} s · {u.requests} request{'s' * (u.requests != 1)} · "
                f"{u.tool_calls} tool call{'s' * (u.tool_calls != 1)} · {u.total_tokens} tokens*")

    # -- publishing ----------------------------------------------------------------------------------
    def _render(self) -> None:
        with self._publish_lock:
            with self._lock:
                version = self._version
            if version == self._published:
                return
            markdown = self.markdown()
            try:
                self._publish(markdown)
            except Exception:
                log.debug("notebook view: publish failed", exc_info=True)
            self._published = version
            self._last = time.monotonic()

    def _throttle(self) -> None:
        """Trailing-edge throttle: a change is shown within ``interval``, never sooner than
        ``interval`` after the previous rendering."""
        while not self._finished.is_set():
            self._wake.wait()
            if self._finished.wait(max(0.0, self._last + self.interval - time.monotonic())):
                return
            self._wake.clear()
            self._render()

    def _begin(self) -> None:
        if not callable(getattr(self.stream, "start", None)):
            raise TypeError(f"show() needs an AgentStream, got {type(self.stream).__name__}")
        self._thread.start()
        try:
            self.stream.start(on_event=self.handle)
        except BaseException:  # already consumed: stop the renderer
            self._finished.set()
            self._wake.set()
            raise

    def _finish(self, event: Any) -> None:
        self._finished.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self._render()
        if self._on_finish is not None:
            try:
                self._on_finish(event)
            except Exception:
                log.debug("notebook view: finishing touch failed", exc_info=True)


class _CellOutput:
    """The Markdown display of one cell, updatable from any thread with that cell's
    parent header, so the frontend applies each update there, whichever cell runs now."""

    def __init__(self, shell: Any, markdown: str) -> None:
        from IPython.display import display

        self.shell = shell
        self.parent = shell.get_parent() if hasattr(shell, "get_parent") else None
        self.handle = display(self._markdown(markdown), display_id=True)

    @staticmethod
    def _markdown(text: str) -> Any:
        from IPython.display import Markdown

        return Markdown(text)

    def update(self, markdown: str) -> None:
        obj = self._markdown(markdown)
        set_thread_parent = getattr(self.shell, "set_thread_parent", None)
        if not self.parent:
            self.handle.update(obj)
        elif callable(set_thread_parent):  # ipykernel >= 7.4: the public way
            tokens = set_thread_parent(self.parent)
            try:
                self.handle.update(obj)
            finally:
                self.shell.reset_thread_parent(tokens)
        else:
            try:
                self._send(obj)
            except AttributeError:  # not ipykernel's display publisher: the kernel's default routing
                self.handle.update(obj)

    def _send(self, obj: Any) -> None:
        """Older ipykernels have one parent header for all threads: send the update with ours."""
        publisher = self.shell.display_pub
        data, metadata = self.shell.display_formatter.format(obj)
        content = {"data": data, "metadata": metadata, "transient": {"display_id": self.handle.display_id}}
        message = publisher.session.msg("update_display_data", content, parent=self.parent)
        publisher.session.send(publisher.pub_socket, message, ident=publisher.topic)


def _stop_button() -> Any:
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets.Button(description="Stop", icon="stop", button_style="danger",
                             tooltip="Cancel the run (keeps what arrived)")


def _button_done(button: Any, event: Any) -> None:
    button.disabled = True
    button.button_style = ""
    button.icon = ""
    button.description = {"run_complete": "Done", "cancelled": "Stopped"}.get(event.kind, "Failed")


def show(stream: Any, *, interval: float = 0.1, stop_button: bool = True) -> NotebookView:
    """Render ``stream`` live in the current cell and consume it in the background.

    Args:
        stream: an ``AgentStream`` nobody has consumed yet (``show`` calls
            ``stream.start()``; your handlers keep running, on its thread).
        interval: least time between two renderings, in seconds (default:
            at most 10 a second).
        stop_button: show a Stop button (needs ipywidgets) that cancels the run.

    Returns:
        The ``NotebookView`` (``.stop()``, ``.stop_button``, ``.markdown()``,
        ``.stream``); as a cell's value it displays nothing more.

    Raises:
        RuntimeError: the stream is already being consumed, or not in IPython.
    """
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        raise RuntimeError("agentstream.notebook needs IPython/Jupyter (from a checkout: pip install -e '.[notebook]')") from None
    shell = get_ipython()
    if shell is None:
        raise RuntimeError("show() renders in a Jupyter/IPython session; in a script, use handlers "
                           "(on_text=...) or the `agentstream run` command")
    button = _stop_button() if stop_button else None
    if button is not None:
        display(button)
    output = _CellOutput(shell, RUNNING)
    view = NotebookView(stream, output.update, interval, button,
                        on_finish=(lambda event: _button_done(button, event)) if button is not None else None)
    try:
        view._begin()
    except BaseException as exc:  # e.g. the stream is already being consumed
        output.update(f"*not shown: {_short(str(exc))}*")
        if button is not None:
            button.close()
        raise
    return view


def watch(stream: Any, publish: Callable[[str], None], *, interval: float = 0.1,
          on_finish: Optional[Callable[[Any], None]] = None) -> NotebookView:
    """``show()`` without IPython: ``publish(markdown)`` gets the whole Markdown of the
    run, throttled to one call per ``interval`` seconds plus a last one at the end
    (then ``on_finish(terminal_event)``). For other UIs, and for tests.

    Consumes the stream on its background thread (``stream.start()``).
    """
    view = NotebookView(stream, publish, interval, on_finish=on_finish)
    view._begin()
    return view
