"""A browser tab as the dashboard server sees it: a websocket session speaking
Streamlit's own protocol (the BackMsg / ForwardMsg protobufs that ship with
streamlit). Used by ``bench/dashboard_load.py`` (many simulated users) and by
the concurrent-refresh test (``tests/reliability/test_concurrent_refresh.py``).

A session connects to ``/_stcore/stream``, asks for a page (a
``rerun_script`` BackMsg naming it, as the browser sends on navigation),
reads every ForwardMsg the server sends, and takes the page as done when the
server says the script finished. It honours the server's auto-rerun requests
(the fragment that checks for a new release every few seconds), as a browser
tab does.

With ``track_releases`` it also records, for every script run the server
finished (asked for or not: the release watcher starts a whole-app run by
itself when the publication changes), which release ids appeared anywhere in
that run's messages, so a test can check that no page mixes two releases.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

#: release ids as ``publication.new_release_id`` makes them (UTC timestamp to the
#: millisecond, then six hex digits); in Markdown the dash may be escaped. Fixed length:
#: in Arrow data strings follow each other with nothing between them
RELEASE_ID = re.compile(rb"\d{8}T\d{9}Z\\?-[0-9a-f]{6}")
#: the sidebar's "Showing release ..." line: the release the run read
SHOWN = re.compile(rb"Showing release (" + RELEASE_ID.pattern + rb")")


@dataclass
class Stats:
    times: list[float] = field(default_factory=list)       # seconds per page
    by_page: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    fragment_runs: int = 0
    server_cpu: float = 0.0    # CPU seconds the server used during the phase
    wall: float = 0.0


@dataclass
class Run:
    """One script run the server finished for this session."""
    finished_at: float              # time.monotonic()
    status: int                     # ForwardMsg.ScriptFinishedStatus
    page: str                       # the page (url path; "" = the default page)
    shown: set[bytes]               # release ids in "Showing release ..." (one in a whole-app run)
    releases: set[bytes]            # every release id in the run's messages
    exception: bool                 # an exception element was drawn


class Session:
    """One browser tab, as the server sees it."""

    def __init__(self, url: str, stats: Stats, timeout: float, track_releases: bool = False):
        self.url, self.stats, self.timeout = url, stats, timeout
        self.track = track_releases
        self.pages: list[str] = []
        self.auto: dict[str, float] = {}       # fragment id -> interval (s)
        self.runs: list[Run] = []
        self._seen: set[bytes] = set()
        self._shown: set[bytes] = set()
        self._run_exception = False
        self._finished: asyncio.Future | None = None
        self._exception = False
        self._reader: asyncio.Task | None = None
        self._auto_task: asyncio.Task | None = None
        self._busy = asyncio.Lock()
        self.page = ""
        self._current = ""     # the page of the run in progress
        self.exception_text = ""

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        host = self.url.split("//", 1)[1]
        self.ws = await connect(f"ws://{host}/_stcore/stream", subprotocols=["streamlit"],
                                origin=self.url, max_size=None, open_timeout=self.timeout)
        self._reader = asyncio.create_task(self._read())
        self._auto_task = asyncio.create_task(self._auto_reruns())

    async def close(self) -> None:
        for t in (self._auto_task, self._reader):
            if t:
                t.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            async for data in self.ws:
                msg = ForwardMsg()
                msg.ParseFromString(data)
                kind = msg.WhichOneof("type")
                if self.track:
                    self._seen.update(m.replace(b"\\", b"") for m in RELEASE_ID.findall(data))
                    self._shown.update(m.replace(b"\\", b"") for m in SHOWN.findall(data))
                if kind == "navigation":
                    self.pages = [p.url_pathname for p in msg.navigation.app_pages if not p.is_hidden]
                elif kind == "auto_rerun":
                    self.auto[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                elif kind == "new_session" and not msg.metadata.run.fragment_ids:
                    # a full run begins (a fragment run names its fragments): forget every
                    # auto-rerun interval, as Streamlit's frontend does; the run sends again
                    # those of the fragments it draws. Why: the server drops, without any
                    # answer, a request for a fragment it no longer holds, so a fragment id
                    # kept from an earlier run left this client waiting out its timeout
                    self.auto.clear()
                elif kind == "stop_auto_rerun":
                    for fid in msg.stop_auto_rerun.fragment_ids:
                        self.auto.pop(fid, None)
                elif kind == "delta":
                    if msg.delta.WhichOneof("type") == "new_element" and \
                            msg.delta.new_element.WhichOneof("type") == "exception":
                        self._exception = True
                        self._run_exception = True
                        exc = msg.delta.new_element.exception
                        self.exception_text = f"{exc.type}: {exc.message}"[:300]
                elif kind == "script_finished":
                    if self.track:
                        self.runs.append(Run(time.monotonic(), msg.script_finished, self._current, self._shown,
                                             self._seen, self._run_exception))
                        self._seen, self._shown, self._run_exception = set(), set(), False
                    if self._finished is not None and not self._finished.done():
                        self._finished.set_result(msg.script_finished)
        except Exception as exc:  # the connection dropped
            if self._finished is not None and not self._finished.done():
                self._finished.set_exception(exc)

    async def _run(self, page: str, fragment_id: str = "") -> tuple[float, int]:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        back = BackMsg()
        cs = back.rerun_script
        cs.page_name = page
        cs.query_string = ""
        if fragment_id:
            cs.fragment_id = fragment_id
            cs.is_auto_rerun = True
        self._exception = False
        self._current = page
        self._finished = asyncio.get_running_loop().create_future()
        t = time.perf_counter()
        await self.ws.send(back.SerializeToString())
        deadline = time.monotonic() + self.timeout
        status = await asyncio.wait_for(self._finished, self.timeout)
        while status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            # a run ended early because another started (the request arrived during a run
            # the server began by itself, or a fragment asked for a whole-app rerun): the
            # answer is the run that follows
            self._finished = asyncio.get_running_loop().create_future()
            status = await asyncio.wait_for(self._finished, max(0.0, deadline - time.monotonic()))
        return time.perf_counter() - t, status

    async def visit(self, page: str) -> None:
        """Ask for a page and time it until the script finished."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        async with self._busy:
            try:
                secs, status = await self._run(page)
            except Exception as exc:
                self.stats.errors.append(f"{page or 'overview'}: {type(exc).__name__}")
                return
            self.page = page
            ok = status == ForwardMsg.FINISHED_SUCCESSFULLY
            if not ok or self._exception:
                self.stats.errors.append(f"{page or 'overview'}: "
                                         + (f"exception on the page ({self.exception_text})" if self._exception
                                            else f"finished {status}"))
                return
            self.stats.times.append(secs)
            self.stats.by_page.setdefault(page or "overview", []).append(secs)

    async def _auto_reruns(self) -> None:
        """Re-run auto-rerun fragments at their interval, as a browser does."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        last: dict[str, float] = {}
        while True:
            await asyncio.sleep(0.5)
            for fid, interval in list(self.auto.items()):
                now = time.monotonic()
                if now - last.get(fid, now - interval) < interval or self._busy.locked():
                    last.setdefault(fid, now)
                    continue
                last[fid] = now
                async with self._busy:
                    if fid not in self.auto:      # a full run began meanwhile and dropped it
                        continue
                    try:
                        _, status = await self._run(self.page, fid)
                    except Exception as exc:
                        self.stats.errors.append(f"fragment: {type(exc).__name__}")
                        continue
                    if self._exception or status not in (ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY,
                                                         ForwardMsg.FINISHED_SUCCESSFULLY):
                        self.stats.errors.append(f"fragment: finished {status}")
                    self.stats.fragment_runs += 1
