"""Several Streamlit processes behind one port, each browser kept on one of them.

Why: Streamlit runs every session's script in a thread of one Python process,
and one event-loop thread of that process sends every session's messages.
Under 20 simulated users (``bench/dashboard_load.py``) one process kept only
0.6-0.7 of a core busy while pages queued for 1.5-2 s: the script threads
and the event loop wait on each other (the interpreter lock and Streamlit's
global configuration lock, py-spy), so adding threads adds waiting, not
work. The same users split over five processes on the same 2 cores got a
p95 page time of 2.5-3.1x the single-user one, against 17.7x. So ``outcomes serve --workers N`` starts N Streamlit
processes on private loopback ports and this small proxy in front of them.

What the proxy does, and why it is enough:

* **Sticky sessions.** A Streamlit session (its widgets, its downloads under
  ``/media/``) lives in one process. A browser's first request gets a cookie
  naming its worker (``outcomes_worker``); its later requests and its
  websocket go to the same one. A client without the cookie (a new browser,
  a script) goes to the worker with the fewest open sessions.
* **Same behaviour as one Streamlit.** Requests and websocket frames are
  passed through unchanged, with the browser's ``Host``, ``Origin`` and
  cookies, so Streamlit's own checks (same origin, XSRF token, the signed
  sign-in cookie) see what they would see directly. The workers share one
  cookie secret (``STREAMLIT_SERVER_COOKIE_SECRET``, random per start unless
  already set), so a sign-in made through one worker holds in all.
* **Nothing else.** It adds no route of its own, serves no file, and reads
  no data: everything a user sees still comes from the Streamlit app.
* **Workers are supervised.** A worker that exits is started again on its
  port; its browsers reconnect to it. Workers die with the proxy (Linux
  ``PR_SET_PDEATHSIG``), so no stray server outlives ``outcomes serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

COOKIE = "outcomes_worker"
#: connection-level headers a proxy must not pass on (RFC 9110 section 7.6.1), plus the
#: websocket handshake's own, which the proxy's upstream connection makes afresh
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host"}
_WS_HANDSHAKE = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                 "sec-websocket-protocol"}


def default_workers() -> int:
    """``OUTCOMES_SERVE_WORKERS``, else twice the cores plus one (at most 8), the usual rule
    for Python web workers: a worker waits on its own locks as much as it computes, so
    fewer sessions per worker matter more than one worker per core. Measured on 2 cores
    (``bench/dashboard_load.py``, 20 users): p95 at 3, 4, 5 and 6 workers 2.5-4.4x, 1.6-3.6x,
    2.5-3.1x and 1.9-3.3x the single-user p95, against 17.7x with one."""
    env = os.environ.get("OUTCOMES_SERVE_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(8, 2 * (os.cpu_count() or 1) + 1))


def free_port() -> int:
    """A TCP port free on the loopback interface now (the workers', the tests' and the benchmarks')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_health_check(url: str, timeout: float = 2.0) -> bool:
    """True when the Streamlit server (or this proxy) at ``url`` says it is ready."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=timeout) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


def _death_signal_hook() -> Callable[[], None] | None:
    """A function for ``preexec_fn`` that has the child sent SIGTERM when the proxy dies
    (Linux ``prctl(PR_SET_PDEATHSIG)``), or None where there is no such call. Looked up
    here, in the parent: the child between fork and exec only calls the C function
    (no import, no allocation that could wait on a lock another thread held)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm)


@dataclass
class Worker:
    index: int
    port: int
    proc: subprocess.Popen | None = None
    sessions: int = 0
    starts: int = 0
    ready: bool = False

    def healthy(self, timeout: float = 2.0) -> bool:
        return answers_health_check(f"http://127.0.0.1:{self.port}", timeout)


@dataclass
class Balancer:
    """The ASGI app in front of the workers. ``command(port)`` is the Streamlit command
    line of one worker; ``env`` its environment."""

    command: Callable[[int], list[str]]
    env: dict[str, str]
    n_workers: int
    workers: list[Worker] = field(default_factory=list)
    start_timeout: float = 120.0

    def __post_init__(self) -> None:
        self.env = dict(self.env)
        self.env.setdefault("STREAMLIT_SERVER_COOKIE_SECRET", secrets.token_hex(32))
        self.workers = [Worker(i, free_port()) for i in range(self.n_workers)]
        self._next = 0
        self._preexec = _death_signal_hook()
        self._client = None
        self._supervisor: asyncio.Task | None = None

    # -- workers --------------------------------------------------------------------------
    def _launch(self, w: Worker) -> None:
        w.ready = False
        w.starts += 1
        w.proc = subprocess.Popen(self.command(w.port), env=self.env, preexec_fn=self._preexec)

    async def _wait_ready(self, w: Worker) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if w.proc is not None and w.proc.poll() is not None:
                raise RuntimeError(f"dashboard worker {w.index} exited with status {w.proc.returncode}")
            if await asyncio.to_thread(w.healthy):
                w.ready = True
                return
            await asyncio.sleep(0.3)
        raise RuntimeError(f"dashboard worker {w.index} did not start within {self.start_timeout:.0f} s")

    async def start(self) -> None:
        for w in self.workers:
            self._launch(w)
        await asyncio.gather(*(self._wait_ready(w) for w in self.workers))
        self._supervisor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        """Start again any worker that exited (its browsers reconnect to the same port)."""
        while True:
            await asyncio.sleep(1.0)
            for w in self.workers:
                if w.proc is not None and w.proc.poll() is not None:
                    print(f"dashboard worker {w.index} exited ({w.proc.returncode}); starting it again",
                          file=sys.stderr, flush=True)
                    self._launch(w)
                    with contextlib.suppress(RuntimeError):
                        await self._wait_ready(w)

    def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for p in procs:
            p.terminate()
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    # -- routing --------------------------------------------------------------------------
    def choose(self, cookie_header: str | None) -> tuple[Worker, bool]:
        """The worker named by the browser's cookie, else the least busy one (ties in turn).
        Returns (worker, whether the cookie must be set)."""
        if cookie_header:
            for part in cookie_header.split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE and value.isdigit() and int(value) < len(self.workers):
                    return self.workers[int(value)], False
        least = min(w.sessions for w in self.workers)
        candidates = [w for w in self.workers if w.sessions == least]
        w = candidates[self._next % len(candidates)]
        self._next += 1
        return w, True

    # -- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    import httpx

                    self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0),
                                                     limits=httpx.Limits(max_connections=None,
                                                                         max_keepalive_connections=64))
                    await self.start()
                except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.stop()
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _headers(scope) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]

    @staticmethod
    def _header(headers: list[tuple[str, str]], name: str) -> str | None:
        """A request header's value (several ``Cookie`` headers joined as one), or None."""
        values = [v for k, v in headers if k.lower() == name]
        return "; ".join(values) if values else None

    @staticmethod
    def _target(scope) -> str:
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        return path.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")

    async def _http(self, scope, receive, send) -> None:
        headers = self._headers(scope)
        w, set_cookie = self.choose(self._header(headers, "cookie"))
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        fwd = [(k, v) for k, v in headers if k.lower() not in _HOP]
        host = self._header(headers, "host")
        if host:
            fwd.append(("host", host))
        request = self._client.build_request(scope["method"], f"http://127.0.0.1:{w.port}{self._target(scope)}",
                                             headers=fwd, content=bytes(body))
        try:
            response = await self._client.send(request, stream=True)
        except Exception:  # noqa: BLE001 - the worker is down or restarting
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": b"The dashboard is restarting; try again."})
            return
        try:
            out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items()
                   if k.lower() not in _HOP]
            if set_cookie:
                out.append((b"set-cookie", f"{COOKIE}={w.index}; Path=/; HttpOnly; SameSite=Lax".encode()))
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def _websocket(self, scope, receive, send) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        headers = self._headers(scope)
        host = self._header(headers, "host") or "localhost"
        w, _ = self.choose(self._header(headers, "cookie"))
        if (await receive())["type"] != "websocket.connect":
            return
        fwd = [(k, v) for k, v in headers if k.lower() not in _HOP | _WS_HANDSHAKE]
        # the upstream connection's Host is the browser's (Streamlit compares it with Origin),
        # over a socket to the worker
        try:
            sock = socket.create_connection(("127.0.0.1", w.port), timeout=10)
        except OSError:              # the worker is restarting: the browser reconnects
            await send({"type": "websocket.close", "code": 1011})
            return
        sock.setblocking(False)
        try:
            upstream = await connect(f"ws://{host}{self._target(scope)}", sock=sock,
                                     subprotocols=scope.get("subprotocols") or None,
                                     additional_headers=fwd, user_agent_header=None, compression=None,
                                     max_size=None, open_timeout=30, ping_interval=None)
        except Exception:  # noqa: BLE001 - refused (e.g. a cross-origin request) or the worker is down
            sock.close()
            await send({"type": "websocket.close", "code": 1011})
            return
        w.sessions += 1
        try:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

            async def browser_to_worker() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    data = message.get("bytes")
                    await upstream.send(data if data is not None else message.get("text", ""))

            async def worker_to_browser() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for data in upstream:
                        key = "bytes" if isinstance(data, bytes) else "text"
                        await send({"type": "websocket.send", key: data})

            tasks = [asyncio.create_task(browser_to_worker()), asyncio.create_task(worker_to_browser())]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in done:
                with contextlib.suppress(Exception):
                    t.result()
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": upstream.close_code or 1000})
        finally:
            w.sessions -= 1
            with contextlib.suppress(Exception):
                await upstream.close()


def serve(command: Callable[[int], list[str]], env: dict[str, str], address: str, port: int,
          workers: int) -> int:
    """Run the proxy on ``address:port`` in front of ``workers`` Streamlit processes until
    stopped (SIGINT/SIGTERM). Returns the exit status."""
    import uvicorn

    app = Balancer(command, env, workers)
    config = uvicorn.Config(app, host=address, port=port, lifespan="on", log_level="warning",
                            ws_max_size=256 * 2**20, ws_ping_interval=None, access_log=False,
                            server_header=False, date_header=False)
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        app.stop()
    return 0 if server.started else 1
