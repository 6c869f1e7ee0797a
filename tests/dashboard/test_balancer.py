"""`outcomes serve --workers N`: several Streamlit processes behind one port
(dashboard/balancer.py). Routing rules as pure logic, then the real thing:
pages through the proxy, a browser kept on its worker, Streamlit's own
same-origin check still in force, a dead worker started again, and no worker
left behind when the server stops."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from dashboard.balancer import COOKIE, Balancer, default_workers, free_port

from ..browser._serve import serving

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from st_client import Session, Stats  # noqa: E402


def _balancer(n: int) -> Balancer:
    return Balancer(command=lambda port: ["true"], env={}, n_workers=n)


def test_a_browser_with_a_cookie_stays_on_its_worker():
    b = _balancer(3)
    assert b.choose(f"theme=dark; {COOKIE}=2") == (b.workers[2], False)
    assert b.choose(f"{COOKIE}=0") == (b.workers[0], False)


def test_new_browsers_go_to_the_least_busy_worker_in_turn():
    b = _balancer(3)
    b.workers[0].sessions, b.workers[1].sessions, b.workers[2].sessions = 2, 1, 1
    picks = [b.choose(None) for _ in range(4)]
    assert [w.index for w, _ in picks] == [1, 2, 1, 2] and all(new for _, new in picks)


@pytest.mark.parametrize("cookie", [f"{COOKIE}=7", f"{COOKIE}=-1", f"{COOKIE}=x", f"{COOKIE}=", f"x{COOKIE}=1"])
def test_a_cookie_naming_no_worker_is_treated_as_none(cookie):
    b = _balancer(2)
    w, new = b.choose(cookie)
    assert new and w in b.workers


def test_workers_share_one_cookie_secret_unless_one_is_set():
    a, b = _balancer(2), _balancer(2)
    secret = a.env["STREAMLIT_SERVER_COOKIE_SECRET"]
    assert len(secret) == 64 and secret != b.env["STREAMLIT_SERVER_COOKIE_SECRET"]
    kept = Balancer(command=lambda port: ["true"], env={"STREAMLIT_SERVER_COOKIE_SECRET": "mine"}, n_workers=2)
    assert kept.env["STREAMLIT_SERVER_COOKIE_SECRET"] == "mine"


def test_default_workers(monkeypatch):
    monkeypatch.setenv("OUTCOMES_SERVE_WORKERS", "5")
    assert default_workers() == 5
    monkeypatch.delenv("OUTCOMES_SERVE_WORKERS")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_workers() == 5
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert default_workers() == 8


def _workers(pid: int) -> list[psutil.Process]:
    """The live Streamlit processes under ``pid`` (a killed one is a zombie until reaped)."""
    out = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and any("streamlit" in part for part in p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _get(url: str, cookie: str | None = None):
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.headers.get_all("Set-Cookie") or [], r.read()


@pytest.mark.slow
def test_served_through_the_balancer(publication, tmp_path):
    port = free_port()
    env = dict(os.environ, OUTCOMES_SERVE_WORKERS="2")
    with serving(publication, port, log=tmp_path / "serve.log", env=env) as url:
        server = next(p for p in psutil.process_iter(["cmdline"])
                      if p.info["cmdline"] and "serve" in p.info["cmdline"] and str(port) in p.info["cmdline"])
        assert len(_workers(server.pid)) == 2

        # a first request is given its worker; a browser that has it is not given another
        status, cookies, body = _get(url + "/")
        assert status == 200 and b"<html" in body.lower()
        given = [c for c in cookies if c.startswith(f"{COOKIE}=")]
        assert len(given) == 1 and "HttpOnly" in given[0]
        cookie = given[0].split(";")[0]
        assert not [c for c in _get(url + "/", cookie)[1] if c.startswith(f"{COOKIE}=")]

        async def sessions():
            stats = Stats()
            s = Session(url, stats, timeout=120)
            await s.connect()
            await s.visit("")
            await s.visit("governance")
            await s.close()
            # another site's page may not open a session (Streamlit's same-origin check,
            # which sees the browser's Host and Origin through the proxy)
            from websockets.asyncio.client import connect

            refused = False
            try:
                ws = await connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"],
                                   origin="http://evil.example", open_timeout=30)
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except Exception:  # noqa: BLE001 - closed by the server
                    refused = True
                await ws.close()
            except Exception:  # noqa: BLE001 - refused in the handshake
                refused = True
            return stats, refused

        stats, refused = asyncio.run(sessions())
        assert stats.errors == [] and len(stats.times) == 2
        assert refused

        # a worker that dies is started again, and pages are served again
        victim = _workers(server.pid)[0]
        victim.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            alive = [p for p in _workers(server.pid) if p.pid != victim.pid and p.is_running()]
            if len(alive) == 2:
                try:
                    if all(_get(url + "/_stcore/health", f"{COOKIE}={i}")[2] == b"ok" for i in (0, 1)):
                        break
                except OSError:
                    pass
            time.sleep(0.5)
        else:
            pytest.fail("the killed worker was not started again:\n" + (tmp_path / "serve.log").read_text()[-2000:])
        # killed outright (no chance to stop its workers), the proxy still takes them with it
        workers = _workers(server.pid)
        server.send_signal(signal.SIGKILL)
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, [p.pid for p in alive]
