"""How the dashboard is served: one list of Streamlit options, used by
``outcomes serve`` (as command-line flags) and by in-process runs of the app
(AppTest in the tests and benchmarks), so both run the app the same way.

Why these options:

* ``runner.magicEnabled = false``: Streamlit's "magic" writes any bare
  expression of a page to the screen. The pages never rely on it, and with it
  off a stray expression can never put data on screen that nobody chose to
  show. It also spares the AST rewrite of every page script.
* ``server.fileWatcherType = none`` and ``global.developmentMode = false``:
  a deployment does not hot-reload code.
* ``client.toolbarMode = viewer``: no developer menu (no "rerun", "settings"
  or source links) for people browsing the outcomes.
* ``browser.gatherUsageStats = false``: no telemetry leaves the council's network.
* ``runner.postScriptGC = false``: Streamlit otherwise forces a full garbage
  collection after every script run, the 3-second release check included.
  With the release's tables cached in memory, each full collection walks
  every cached object: under 8 simulated users this was 56% of the server's
  CPU (py-spy), so pages queued behind collections. Python's own generational
  collector still runs as usual; memory stayed flat in the load bench.
"""

from __future__ import annotations

SERVER_OPTIONS: dict[str, object] = {
    "server.headless": True,
    "browser.gatherUsageStats": False,
    "server.fileWatcherType": "none",
    "global.developmentMode": False,
    "client.toolbarMode": "viewer",
    "runner.magicEnabled": False,
    "runner.postScriptGC": False,
}


def command_line_flags() -> list[str]:
    """The options as ``streamlit run`` flags."""
    flags: list[str] = []
    for name, value in SERVER_OPTIONS.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        flags += [f"--{name}", text]
    return flags


def apply_in_process() -> None:
    """Set the options for an app run inside this process (AppTest)."""
    from streamlit import config

    for name, value in SERVER_OPTIONS.items():
        config.set_option(name, value)
