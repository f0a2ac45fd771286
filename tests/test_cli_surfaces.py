"""The command line's user surfaces: ``--version``, ``--base-url`` / ``--api-key`` and what the
``--json`` terminal lines carry. Subprocesses as in ``test_cli.py`` (its helpers), talking only to
``tests.server.Server`` on 127.0.0.1.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

import agentstream
from agentstream import ModelMessagesTypeAdapter, UserPromptPart

from .server import FAKE_KEY, Reply, Server, refused_url
from .test_cli import REPO, cli_env, openai_reply, run_cli

pytestmark = pytest.mark.timeout(20)


def test_version():
    done = run_cli("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"agentstream {agentstream.__version__}\n", "")
    script = Path(sys.executable).with_name("agentstream")
    if script.exists():  # the console script of an installed checkout
        done = subprocess.run([str(script), "--version"], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=15)
        assert (done.returncode, done.stdout) == (0, f"agentstream {agentstream.__version__}\n")


def test_run_json_run_complete_carries_the_messages():
    done = run_cli("run", "--model", "test", "--tools", "tests.test_cli:add", "--json", "hi")
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["kind"] == "run_complete" and last["usage"]["requests"] == 2
    history = ModelMessagesTypeAdapter.validate_python(last["messages"])
    assert [m.kind for m in history] == ["request", "response", "request", "response"]
    assert history[0].parts == [UserPromptPart("hi")]
    assert [p.tool_name for p in history[1].tool_calls] == ["add"]
    assert history[3].text == '{"add": 0}'


def test_base_url_and_api_key_flags_reach_the_server_and_the_key_is_never_printed():
    with Server() as server:
        server.enqueue(openai_reply("Hi there"))
        done = run_cli("run", "--model", "openai:gpt-4o-mini", "--base-url", server.url + "/v1",
                       "--api-key", FAKE_KEY, "hi")  # no OPENAI_API_KEY, OPENAI_BASE_URL refused
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "Hi there"
    request = server.requests[0]
    assert request.path == "/v1/chat/completions" and request.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert FAKE_KEY not in done.stdout + done.stderr


def test_api_key_flag_on_a_failed_request_is_not_printed():
    with Server() as server:
        server.enqueue(Reply.json(401, {"error": {"message": "Incorrect API key provided", "type": "auth"}}))
        done = run_cli("run", "--model", "openai:gpt-4o-mini", "--base-url", server.url + "/v1",
                       "--api-key", FAKE_KEY, "--json", "hi")
    assert done.returncode == 1
    assert "[usage] model=gpt-4o-mini" in done.stderr
    assert FAKE_KEY not in done.stdout + done.stderr and FAKE_KEY[-12:] not in done.stdout + done.stderr


def test_base_url_without_model_uses_the_servers_first_model():
    with Server() as server:
        server.enqueue(Reply.json(200, {"data": [{"id": "nomic-embed"}, {"id": "local-llm"}]}), openai_reply("ok"))
        done = run_cli("run", "--base-url", server.url + "/v1/", "hi")
    assert done.returncode == 0, done.stderr
    assert f"agentstream: using local-llm (listed at {server.url}/v1/models)" in done.stderr
    assert done.stdout.splitlines()[0] == "ok"
    models, chat = server.requests
    assert models.path == "/v1/models" and "authorization" not in models.headers
    assert chat.path == "/v1/chat/completions" and chat.json["model"] == "local-llm"
    assert "authorization" not in chat.headers


def test_base_url_with_a_bare_model_name_is_an_openai_compatible_server():
    with Server() as server:
        server.enqueue(openai_reply("ok"))
        done = run_cli("run", "--model", "my-model", "--base-url", server.url + "/v1", "--api-key", FAKE_KEY, "hi")
    assert done.returncode == 0, done.stderr
    assert server.requests[0].json["model"] == "my-model"
    assert server.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


@pytest.mark.parametrize("args, message", [
    (["--api-key", FAKE_KEY], "--api-key needs --model PREFIX:MODEL or --base-url"),
    (["--model", "test", "--base-url", "http://127.0.0.1:9/v1"], "--base-url apply to PREFIX:MODEL models"),
    (["--model", "tests.test_cli:failing_model", "--api-key", FAKE_KEY], "--api-key apply to PREFIX:MODEL"),
    (["--model", "my-model", "--api-key", FAKE_KEY], "needs a prefix (e.g. openai:my-model) or --base-url"),
    (["--base-url", "REFUSED"], "no model listed at REFUSED/models; name one with --model"),
])
def test_base_url_and_api_key_misuse_is_a_usage_error(args: List[str], message: str):
    refused = refused_url() + "/v1"
    args = [refused if a == "REFUSED" else a for a in args]
    done = run_cli("run", *args, "hi")
    assert done.returncode == 2, done.stderr
    assert message.replace("REFUSED", refused) in done.stderr
    assert FAKE_KEY not in done.stderr and "Traceback" not in done.stderr


def test_demo_with_base_url_names_the_server_without_credentials():
    with Server() as server:
        server.enqueue(openai_reply("Sunny; 5."))
        url = server.url.replace("http://", "http://me:pw-SECRET@") + "/v1"
        done = run_cli("demo", "--model", "my-model", "--base-url", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"agentstream demo - model: my-model at {server.url}/v1\n")
    assert "Sunny; 5." in done.stdout and "pw-SECRET" not in done.stdout + done.stderr
    assert server.requests[0].json["model"] == "my-model"
