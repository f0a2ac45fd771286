"""A Flask page that streams an agent's answer with Server-Sent Events.

Run it::

    pip install flask
    python examples/flask_app.py          # then open http://127.0.0.1:5000/

The page opens an ``EventSource`` on ``/stream?prompt=...``, appends each
``text_delta`` to the page, lists tool calls, and closes the EventSource on
the terminal event (``run_complete``, ``error`` or ``cancelled``) -- else the
browser would reconnect and start a new run. Closing the tab cancels the run
on the server (the WSGI server closes the response body, ``iter_sse``
cancels); the Stop button does it on purpose via ``POST /cancel/<run_id>``.

With ``OPENAI_API_KEY`` set it talks to ``openai:gpt-4o-mini``; otherwise
to an offline model that streams a canned answer slowly.
"""
from __future__ import annotations

import os
import weakref
from typing import Any, Iterator, List, Optional

from flask import Flask, Response, request

from agentstream import Agent
from agentstream.models import FunctionModel
from agentstream.web import flask_response

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>agentstream + Flask</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; }
  #answer { white-space: pre-wrap; min-height: 3rem; border-left: 3px solid #ccc; padding-left: 1rem; }
  #tools { color: #555; font-family: monospace; }
  #status { color: #888; }
</style>
</head>
<body>
<h1>Ask the agent</h1>
<form id="ask"><input id="prompt" size="50" value="What's the weather in Paris?">
  <button>Ask</button> <button type="button" id="stop" disabled>Stop</button></form>
<ul id="tools"></ul>
<div id="answer"></div>
<p id="status">idle</p>
<script>
const $ = (id) => document.getElementById(id);
const TERMINAL = ["run_complete", "cancelled", "error"];
let source = null, runId = null;

function start(prompt) {
  if (source) source.close();
  $("answer").textContent = ""; $("tools").textContent = ""; $("status").textContent = "running";
  source = new EventSource("stream?prompt=" + encodeURIComponent(prompt));
  source.addEventListener("run_start", (e) => { runId = JSON.parse(e.data).run_id; $("stop").disabled = false; });
  source.addEventListener("text_delta", (e) => $("answer").append(JSON.parse(e.data).text));
  // a response cut after output and sent again (max_retries_after_output): drop what it showed
  let responseStart = 0;
  source.addEventListener("request_start", () => { responseStart = $("answer").textContent.length; });
  source.addEventListener("retrying", (e) => {
    if (JSON.parse(e.data).reset) $("answer").textContent = $("answer").textContent.slice(0, responseStart);
  });
  source.addEventListener("tool_call_complete", (e) => {
    const call = JSON.parse(e.data), li = document.createElement("li");
    li.id = "tool-" + call.tool_call_id;
    li.textContent = call.tool_name + "(" + JSON.stringify(call.args) + ")";
    $("tools").append(li);
  });
  source.addEventListener("tool_executed", (e) => {
    const done = JSON.parse(e.data), li = $("tool-" + done.tool_call_id);
    if (li) li.textContent += done.success ? " -> " + JSON.stringify(done.result) : " failed: " + done.error;
  });
  // "error" is also what EventSource fires when the connection fails (then without data).
  for (const kind of TERMINAL) source.addEventListener(kind, (e) => finish(kind, e.data ? JSON.parse(e.data) : null));
}

function finish(kind, data) {
  source.close();  // the run is over: do not let the browser reconnect (that would start a new run)
  source = null; $("stop").disabled = true;
  $("status").textContent = kind === "error" ? "error: " + (data ? data.message : "connection lost") : kind;
}

// Leaving the page ends the run. Without this, a page kept in the back/forward cache
// would keep its EventSource, and the run, going.
window.addEventListener("pagehide", () => { if (source) finish("left", null); });
$("ask").addEventListener("submit", (e) => { e.preventDefault(); start($("prompt").value); });
$("stop").addEventListener("click", () => { if (runId) fetch("cancel/" + runId, {method: "POST"}); });
const given = new URLSearchParams(location.search).get("prompt");
if (given !== null) { $("prompt").value = given; start(given); }
</script>
</body>
</html>
"""


def get_weather(city: str) -> str:
    """Current weather for a city (demo data).

    Args:
        city: City name, e.g. "Paris".
    """
    return f"{city}: 18°C, light rain"


def _offline(messages: List[Any], info: Any) -> Iterator[str]:
    for word in "No API key is set, so this is the offline model, streaming a word at a time.".split():
        if info.cancel.wait(0.15):
            return
        yield word + " "


def default_agent() -> Agent:
    model: Any = "openai:gpt-4o-mini" if os.environ.get("OPENAI_API_KEY") else FunctionModel(_offline)
    return Agent(model, system_prompt="You are terse.", tools=[get_weather])


def create_app(agent: Any = None, heartbeat: float = 15.0) -> Flask:
    """The app. ``agent``: anything with ``run_stream(prompt)``; ``heartbeat``: seconds
    of silence before a keep-alive comment (it also bounds how long a departed client
    goes unnoticed while the model is silent)."""
    app = Flask(__name__)
    agent = agent if agent is not None else default_agent()
    runs: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()  # run_id -> running stream
    app.extensions["agentstream_runs"] = runs

    @app.get("/")
    def page() -> str:
        return PAGE

    @app.get("/stream")
    def stream() -> Response:
        run = agent.run_stream(request.args.get("prompt", "Hello!"))
        runs[run.run_id] = run
        return flask_response(run, heartbeat=heartbeat)

    @app.post("/cancel/<run_id>")
    def cancel(run_id: str) -> Any:
        run: Optional[Any] = runs.get(run_id)
        if run is None:
            return "no such run", 404
        run.cancel()
        return "", 204

    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000, threaded=True)
