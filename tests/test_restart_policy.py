"""Point 9 of issue 10: a response cut after output may be sent again whole
(``max_retries_after_output``); the consumer first gets ``Retrying(reset=True)``."""
import threading

from agentstream import Agent
from agentstream.events import Retrying, TextDelta
from agentstream.exceptions import ModelStreamError
from agentstream.models import FunctionModel
from agentstream.models._base import StreamReset
from agentstream.notebook import watch


def _cut_once(messages, info):
    yield "Hel"
    yield StreamReset(1, 0.0, ModelStreamError("connection cut after 40 bytes", error_type="connection_cut"))
    yield "Hello, world"


def test_a_reset_drops_the_partial_and_counts_the_void_attempt():
    agent = Agent(FunctionModel(_cut_once), system_prompt="x")
    stream = agent.run_stream("hi")
    events = list(stream)
    kinds = [e.kind for e in events]
    reset = next(e for e in events if isinstance(e, Retrying))
    assert reset.reset is True and reset.attempt == 1 and "connection cut" in str(reset.error)
    assert kinds.index("retrying") > kinds.index("text_delta")          # after the void output
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "Hello, world"]
    result = stream.result()
    assert result.output == "Hello, world" and stream.text == "Hello, world"
    assert result.usage.requests == 2 and result.usage.estimated
    assert reset.to_dict()["reset"] is True


def test_a_reset_in_a_later_step_keeps_the_earlier_steps_text():
    def fn(messages, info):
        if len(messages) == 1:
            from agentstream.messages import ToolCallPart
            return ["Looking. ", ToolCallPart("ping", {}, "c1")]
        return _cut_once(messages, info)

    agent = Agent(FunctionModel(fn))

    @agent.tool_plain
    def ping() -> str:
        return "pong"

    stream = agent.run_stream("hi")
    result = stream.result()
    assert stream.text == "Looking. Hello, world" and result.output == "Hello, world"


def test_the_notebook_view_drops_the_reset_response():
    done = threading.Event()
    published = []
    view = watch(Agent(FunctionModel(_cut_once)).run_stream("hi"), published.append,
                 interval=0.0, on_finish=lambda event: done.set())
    assert done.wait(10)
    final = view.markdown()
    assert "Hello, world" in final and "HelHello" not in final


def test_retrying_defaults_to_no_reset():
    assert Retrying(1, 0.5).reset is False


# --- over HTTP: a real loopback server cuts the first response after output ---------------------

import pytest  # noqa: E402

from agentstream.exceptions import RunCancelled  # noqa: E402
from tests.faultkit import OPENAI, WIRES, Reply, assert_failed, drive  # noqa: E402
from tests.faultkit import make_fixture, server_fixture  # noqa: E402,F401 (the "make" and "server" fixtures)


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
def test_cut_after_output_is_sent_again_whole(server, make, wire):
    chunks = wire.partial("Hel", "lo") + [b"xx"]
    server.enqueue(Reply(chunks=chunks, drop_mid_chunk=len(chunks) - 1), wire.reply("Hello there"))
    out = drive(make(wire, max_retries_after_output=1))
    assert out.error is None, out.error
    resets = [e for e in out.events if isinstance(e, Retrying)]
    assert [(r.attempt, r.reset) for r in resets] == [(1, True)]
    assert out.kinds.index("retrying") > out.kinds.index("text_delta")
    result = out.stream.result()
    assert result.output == "Hello there" == out.stream.text
    assert result.usage.requests == 2 and result.usage.estimated
    assert len(server.requests) == 2 and server.requests[0].json == server.requests[1].json


def test_by_default_a_cut_after_output_still_ends_the_run(server, make):
    server.enqueue(Reply(chunks=OPENAI.partial("Hel", "lo") + [b"x"], drop_mid_chunk=2))
    out = drive(make(OPENAI))
    assert_failed(out, ModelStreamError, "connection cut after", partial="Hello")
    assert len(server.requests) == 1


def test_restarts_are_bounded(server, make):
    cut = dict(chunks=OPENAI.partial("Hel") + [b"x"], drop_mid_chunk=1)
    server.enqueue(Reply(**cut), Reply(**cut), Reply(**cut))
    out = drive(make(OPENAI, max_retries_after_output=2))
    assert isinstance(out.error, ModelStreamError) and "connection cut after" in str(out.error)
    assert out.error.partial_text == "Hel" == out.stream.text   # the last attempt's partial only
    assert out.error.usage.requests == 3
    assert [e.attempt for e in out.events if isinstance(e, Retrying)] == [1, 2]
    assert len(server.requests) == 3


def test_cancel_during_the_restart_wait_ends_at_once(server, make):
    server.enqueue(Reply(chunks=OPENAI.partial("Hel") + [b"x"], drop_mid_chunk=1))
    agent = make(OPENAI, max_retries_after_output=1)
    agent.model.retry_base = agent.model.retry_max_delay = 30.0   # a long wait before the restart
    stream = agent.run_stream("hi", on_event=lambda e: stream.cancel() if isinstance(e, Retrying) else None)
    with pytest.raises(RunCancelled) as caught:
        stream.result(timeout=5)
    assert caught.value.partial_text == ""   # the void response's text is not kept
    assert len(server.requests) == 1


def test_a_client_error_is_not_restarted(server, make):
    server.enqueue(Reply(chunks=OPENAI.partial("Hel") + [
        b'data: {"error": {"type": "invalid_request_error", "message": "bad"}}\n\n']))
    out = drive(make(OPENAI, max_retries_after_output=3))
    assert out.error is not None and not any(isinstance(e, Retrying) for e in out.events)
    assert len(server.requests) == 1


def test_max_retries_after_output_is_validated():
    from agentstream.exceptions import UserError
    from agentstream.models import OpenAIChatModel

    with pytest.raises(UserError, match="max_retries_after_output must be an int >= 0"):
        OpenAIChatModel("m", base_url="http://127.0.0.1:1/v1", api_key="k", max_retries_after_output=-1)


def test_a_whole_response_request_starts_over_on_a_reset():
    """Summaries use ``complete_response``: a reset there drops the void part too."""
    from agentstream._accumulate import complete_response
    from agentstream.messages import ModelRequest, UserPromptPart
    from agentstream.models._base import ModelRequestParameters, StreamContext
    from agentstream.settings import ModelSettings
    from agentstream._cancel import CancelToken

    response = complete_response(FunctionModel(_cut_once), [ModelRequest([UserPromptPart("sum up")])],
                                 ModelSettings(), ModelRequestParameters(), StreamContext(cancel=CancelToken()))
    assert response.text == "Hello, world"
