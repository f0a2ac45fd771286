"""agentstream.notebook: the throttled live view (in process), and the example
notebook executed by nbclient against a real ipykernel."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

from agentstream import Agent, RunCancelled, ToolCallPart, events
from agentstream.models import FunctionModel
from agentstream.notebook import show, watch

from .helpers import Gate, stalled_after

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "notebook.ipynb"

pytestmark = pytest.mark.timeout(20)


class Recorder:
    """A publish function: records (time, markdown, thread name); waits on a condition."""

    def __init__(self) -> None:
        self.calls: List[Tuple[float, str, str]] = []
        self.cond = threading.Condition()

    def __call__(self, markdown: str) -> None:
        with self.cond:
            self.calls.append((time.monotonic(), markdown, threading.current_thread().name))
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 5) -> str:
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(md) for _, md, _ in self.calls), timeout), self.calls
            return next(md for _, md, _ in self.calls if predicate(md))

    @property
    def last(self) -> str:
        return self.calls[-1][1]


def test_updates_are_throttled_and_the_last_one_has_everything(no_thread_leak):
    chunks = [f"w{i} " for i in range(150)]

    def model(messages: Any, info: Any) -> Any:
        for c in chunks:
            if info.cancel.wait(0.004):  # the model's pace, ~0.6 s in all
                return
            yield c

    texts: List[str] = []
    stream = Agent(FunctionModel(model)).run_stream("go", on_text=texts.append)
    recorder = Recorder()
    view = watch(stream, recorder, interval=0.1)
    result = stream.result(timeout=10)
    times = [t for t, _, _ in recorder.calls]
    gaps = [b - a for a, b in zip(times, times[1:-1])]  # the last rendering may come sooner
    assert gaps and min(gaps) >= 0.09, gaps
    assert len(times) <= (times[-1] - times[0]) / 0.1 + 2
    assert len(times) >= 3  # it did render while the run went on
    assert result.output == "".join(chunks) == "".join(texts)  # the stream's own handlers still ran
    assert recorder.last == view.markdown()
    assert recorder.last.startswith("".join(chunks)) and "*done in" in recorder.last
    assert "running" in recorder.calls[0][1]


def test_tool_calls_show_while_they_run(no_thread_leak):
    release = threading.Event()

    def get_weather(city: str) -> str:
        release.wait(5)
        return f"{city}: sunny"

    def model(messages: Any, info: Any) -> Any:
        if len(messages) == 1:
            yield "Let me check. "
            yield ToolCallPart("get_weather", {"city": "Paris"}, "c1")
        else:
            yield "It is sunny."

    stream = Agent(FunctionModel(model), tools=[get_weather]).run_stream("weather?")
    recorder = Recorder()
    watch(stream, recorder, interval=0.05)
    running = recorder.wait_for(lambda md: "get_weather" in md)
    assert '🔧 `get_weather(city="Paris")` … running' in running
    release.set()
    stream.result(timeout=5)
    final = recorder.last
    assert '🔧 `get_weather(city="Paris")` → `Paris: sunny`' in final
    assert final.index("Let me check.") < final.index("get_weather") < final.index("It is sunny.")


def test_stop_cancels_and_the_view_says_so(no_thread_leak):
    gate = Gate()
    stream = Agent(FunctionModel(stalled_after(["Hel", "lo"], gate))).run_stream("x")
    recorder = Recorder()
    finished: List[Any] = []
    view = watch(stream, recorder, interval=0.05, on_finish=finished.append)
    recorder.wait_for(lambda md: "Hello" in md)
    view.stop()
    with pytest.raises(RunCancelled):
        stream.result(timeout=5)
    assert [type(e) for e in finished] == [events.Cancelled]
    assert recorder.last.startswith("Hello") and "cancelled after" in recorder.last and "kept 5 characters" in \
        recorder.last
    publishers = {name for _, _, name in recorder.calls}
    assert publishers <= {f"agentstream-dispatch-{stream.run_id[:8]}", f"agentstream-notebook-{stream.run_id[:8]}"}


def test_an_error_ends_the_view(no_thread_leak):
    def model(messages: Any, info: Any) -> Any:
        yield "partial"
        raise ValueError("model exploded")

    stream = Agent(FunctionModel(model)).run_stream("x")
    recorder = Recorder()
    watch(stream, recorder)
    with pytest.raises(ValueError):
        stream.result(timeout=5)
    assert recorder.last.startswith("partial") and "**Error:** model exploded" in recorder.last


def test_a_consumed_stream_is_refused_and_left_alone(no_thread_leak):
    stream = Agent(FunctionModel(lambda m, i: "hi")).run_stream("x").start()
    with pytest.raises(RuntimeError):
        watch(stream, Recorder())
    assert stream.result(timeout=5).output == "hi"


def test_show_needs_ipython():
    pytest.importorskip("IPython")
    stream = Agent(FunctionModel(lambda m, i: "hi")).run_stream("x")
    with stream, pytest.raises(RuntimeError, match="Jupyter"):
        show(stream)


# -- the example notebook, in a real kernel ---------------------------------------------------------------------------
def outputs_of(nb: Any, tag: str) -> List[Any]:
    return next(c for c in nb.cells if tag in c.metadata.get("tags", [])).outputs


def stdout_of(nb: Any, tag: str) -> str:
    return "".join(o.text for o in outputs_of(nb, tag) if o.output_type == "stream" and o.name == "stdout")


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernel spec for exactly this interpreter, with private IPython/Jupyter dirs (parallel-safe)."""
    pytest.importorskip("ipykernel")
    spec = tmp_path / "jupyter" / "kernels" / "agentstream-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "agentstream test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(tmp_path)
    return "agentstream-test"


@pytest.mark.slow
def test_example_notebook_runs_in_a_real_kernel(kernel_name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(str(EXAMPLE), as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=15,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    live = outputs_of(nb, "live")
    answer = stdout_of(nb, "live").rstrip("\n")
    assert answer.startswith("**Paris** right now") and answer.endswith("Take an umbrella.")
    markdown = [o.data["text/markdown"] for o in live if "text/markdown" in o.get("data", {})]
    assert len(markdown) == 1  # one display, updated in place
    final = markdown[0]
    assert answer in final  # the saved (last) rendering holds the whole answer
    assert '🔧 `get_weather(city="Paris")` → `Paris: 18 °C, light rain`' in final
    assert "*done in" in final and "2 requests · 1 tool call ·" in final

    has_widgets = importlib.util.find_spec("ipywidgets") is not None
    buttons = [o for o in live if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(buttons) == (1 if has_widgets else 0)
    stopped = stdout_of(nb, "stop-click")
    assert "run ended: cancelled, kept" in stopped
    assert f"button: {'Stopped' if has_widgets else None}" in stopped
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


SLOW_RUN = """
from agentstream import Agent
from agentstream.models import FunctionModel
from agentstream.notebook import show

def model(messages, info):
    for i in range(15):
        if info.cancel.wait(0.02):
            return
        yield f"chunk{i} "

stream = Agent(FunctionModel(model)).run_stream("x")
view = show(stream, stop_button=False)
"""


@pytest.mark.slow
@pytest.mark.parametrize("routing", ["ipykernel API", "own message"])
def test_updates_after_the_cell_finished_still_target_that_cell(kernel_name, routing):
    """Cell A starts a run and returns; cell B waits for it. Every display message of the
    run -- also those sent while B executes -- carries A's parent header, so a frontend
    routes it to A's output area; B gets only its own print. Both ways: ipykernel's
    ``set_thread_parent`` (7.4+) and the message built by hand (older ipykernels)."""
    manager = pytest.importorskip("jupyter_client.manager")
    km, kc = manager.start_new_kernel(kernel_name=kernel_name, startup_timeout=15)
    try:
        if routing == "own message":  # hide the API, as in ipykernel < 7.4
            kc.execute("get_ipython().set_thread_parent = None")
            assert kc.get_shell_msg(timeout=10)["content"]["status"] == "ok"
        cell_a = kc.execute(SLOW_RUN)
        assert kc.get_shell_msg(timeout=10)["content"]["status"] == "ok"
        cell_b = kc.execute("print(stream.result().output[:6])")
        assert kc.get_shell_msg(timeout=10)["content"]["status"] == "ok"
        messages = []
        while True:  # until cell B's kernel status goes idle: everything of A and B has been seen
            msg = kc.get_iopub_msg(timeout=10)
            messages.append(msg)
            if (msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == cell_b):
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    parent = [(m["msg_type"], m["parent_header"].get("msg_id")) for m in messages]
    displays = [(i, m) for i, m in enumerate(messages) if m["msg_type"] in ("display_data", "update_display_data")]
    assert displays and all(m["parent_header"]["msg_id"] == cell_a for _, m in displays)
    idle_a = max(i for i, (kind, pid) in enumerate(parent) if kind == "status" and pid == cell_a)
    assert any(i > idle_a for i, _ in displays), "no update came after cell A finished: the test proves nothing"
    assert "chunk14" in displays[-1][1]["content"]["data"]["text/markdown"]
    b_outputs = [m for m in messages if m["parent_header"].get("msg_id") == cell_b and m["msg_type"] != "status"]
    assert [(m["msg_type"], m["content"].get("text")) for m in b_outputs if m["msg_type"] != "execute_input"] == [
        ("stream", "chunk0\n")]
