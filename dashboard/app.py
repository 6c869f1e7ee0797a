"""The outcomes dashboard: `outcomes serve` runs `streamlit run dashboard/app.py`.

Each script run resolves the publication path once (``frame.begin_run``) and
every page reads from that one release file. A small fragment re-checks the
path every few seconds; when a new release has been published (the symlink
switched) it reruns the whole app, which then reads the new file.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run dashboard/app.py` from a plain checkout
    sys.path.insert(0, str(HERE.parent))

import streamlit as st  # noqa: E402

from dashboard import access, frame, queries  # noqa: E402

REFRESH_EVERY = timedelta(seconds=3)


st.set_page_config(page_title="Place-based outcomes", page_icon=frame.favicon(), layout="wide")

PAGES = HERE / "pages"
pages = [
    st.Page(PAGES / "overview.py", title="Place overview", icon=":material/dashboard:", default=True),
    st.Page(PAGES / "trends.py", title="Trends", icon=":material/show_chart:"),
    st.Page(PAGES / "compare.py", title="Compare areas", icon=":material/leaderboard:"),
    st.Page(PAGES / "map.py", title="Map", icon=":material/map:"),
    st.Page(PAGES / "early_years.py", title="Early years", icon=":material/child_care:"),
]
if (PAGES / "evidence.py").exists():
    pages.append(st.Page(PAGES / "evidence.py", title="Evidence of benefit", icon=":material/science:"))
pages.append(st.Page(PAGES / "governance.py", title="Data and governance", icon=":material/policy:"))

# Optional sign-in (dashboard/access.py): when an OpenID Connect provider is
# configured, a session that may not enter gets the sign-in (or not
# authorised) page and nothing else: no navigation, no release, no data. The
# gate answers at every page's address too, so a bookmarked link shows the
# sign-in page rather than "page not found".
_, decision = access.current()
if not decision.allowed:
    st.navigation([st.Page(access.gate, title="Sign in", url_path="sign-in", default=True)]
                  + [st.Page(access.gate, title="Sign in", url_path=p.url_path) for p in pages
                     if p.url_path],
                  position="hidden").run()
    st.stop()


@st.fragment(run_every=REFRESH_EVERY)
def _watch_for_new_release(key_at_start: str | None) -> None:
    """Rerun the app when the publication now points at another file."""
    path = queries.resolve_release_file()
    try:
        now = queries.release_key(path) if path is not None else None
    except OSError:
        now = None
    if now != key_at_start:
        st.rerun(scope="app")


nav = st.navigation(pages)
with frame.begin_run() as rel:
    with st.sidebar:
        access.sidebar(decision)
        if rel is not None:
            st.caption(f"Showing release {frame.md(rel.release_id)}  \npublished {rel.published_at:%d %b %Y %H:%M} UTC")
        _watch_for_new_release(rel.key if rel is not None else None)
    nav.run()
