"""Stream a run to a browser from a WSGI app (Flask, Django): Server-Sent Events.

Usage (Flask)::

    from agentstream.web import flask_response

    @app.get("/stream")
    def stream():
        return flask_response(agent.run_stream(request.args["prompt"]))

Usage (Django)::

    from agentstream.web import django_response

    def stream(request):
        return django_response(agent.run_stream(request.GET["prompt"]))

The body is ``stream.iter_sse(heartbeat)``: each event as ``event: <kind>``
plus ``data: <to_dict() as JSON>``, and a ``: heartbeat`` comment after
``heartbeat`` seconds without one. When the client goes away, the WSGI
server's next write fails and it closes the body, which cancels the run;
the heartbeat bounds how long that takes while the model is silent. In the
browser, close the ``EventSource`` on the terminal event (``run_complete``,
``error`` or ``cancelled``), or it reconnects and starts a new run.

Flask and Django are imported only when their helper is called.
"""
from __future__ import annotations

from typing import Any, Dict

__all__ = ["SSE_HEADERS", "TERMINAL_KINDS", "django_response", "flask_response", "sse_headers"]

SSE_HEADERS: Dict[str, str] = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}
"""Headers every SSE response gets (besides its ``text/event-stream`` content type)."""

TERMINAL_KINDS = ("run_complete", "error", "cancelled")
"""The ``event:`` names that end a run's stream: close the ``EventSource`` on any of them."""


def sse_headers() -> Dict[str, str]:
    """A fresh copy of ``SSE_HEADERS``, for other frameworks."""
    return dict(SSE_HEADERS)


def flask_response(stream: Any, heartbeat: float = 15.0) -> Any:
    """A Flask ``Response`` streaming ``stream`` as ``text/event-stream``.

    Args:
        stream: an ``AgentStream`` nobody has consumed yet.
        heartbeat: seconds of silence before a ``: heartbeat`` comment (keeps
            proxies from timing out, and notices a client that left).
    """
    from flask import Response

    return Response(stream.iter_sse(heartbeat), mimetype="text/event-stream", headers=sse_headers())


def django_response(stream: Any, heartbeat: float = 15.0) -> Any:
    """A Django ``StreamingHttpResponse`` streaming ``stream`` as ``text/event-stream``.

    Args:
        stream: an ``AgentStream`` nobody has consumed yet.
        heartbeat: as for ``flask_response``.
    """
    from django.http import StreamingHttpResponse

    response = StreamingHttpResponse(stream.iter_sse(heartbeat), content_type="text/event-stream")
    for name, value in SSE_HEADERS.items():
        response[name] = value
    return response
