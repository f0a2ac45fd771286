"""The real-server suite (tests/real, ``make test-real``) stays out of ``make test``, and a
server that is not installed skips its tests only outside ``make test-real``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.real import _servers

ROOT = Path(__file__).resolve().parents[1]


def test_real_tests_are_deselected_by_default() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTSTREAM_REAL", "PYTEST_"))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", "tests/real"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=50)
    tail = proc.stdout.strip().splitlines()[-1]
    # exit 5: nothing selected (a collection error would be exit 2); every real test deselected
    assert proc.returncode == 5 and "deselected" in tail, proc.stdout + proc.stderr


@pytest.mark.parametrize("required, outcome", [(False, pytest.skip.Exception), (True, pytest.fail.Exception)])
def test_missing_server_skips_only_outside_make_test_real(monkeypatch, tmp_path, required, outcome) -> None:
    monkeypatch.setattr(_servers, "REQUIRED", required)
    monkeypatch.setenv("AGENTSTREAM_REAL_VENV", str(tmp_path / "absent"))
    with pytest.raises(outcome, match="make test-real"):
        _servers.venv_tool("llmock")
    with pytest.raises(outcome, match="make test-real"):
        _servers.smollm2_gguf()
