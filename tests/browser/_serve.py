"""`outcomes serve` as the browser tests run it: on a free port, in its own
process group, waited for until it answers, and stopped whole afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from dashboard.balancer import answers_health_check

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serving(db: Path, port: int, *, log: Path, cwd: Path = REPO, env: dict | None = None,
            start_timeout: float = 90.0) -> Iterator[str]:
    """Run ``outcomes serve --db db --port port`` and yield its URL once
    ``/_stcore/health`` says ok; fail the test with the server's log if it
    does not start. ``outcomes serve`` starts streamlit as a child, so the
    whole process group is stopped at the end, and nothing of it outlives
    the test."""
    env = dict(env if env is not None else os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "serve", "--db", str(db), "--port", str(port)],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if answers_health_check(url):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dashboard server did not start on port {port}:\n"
                            + log.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    proc.wait(timeout=10)
