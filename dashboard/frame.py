"""The frame every page shares: the release it shows, legends, and the
"chart + table behind it + CSV" block.

The release is resolved once per script run by ``app.py`` (:func:`begin_run`)
and every page reads it with :func:`release`, so a page never mixes two
releases even if a new one is published while it runs.
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pandas as pd
import streamlit as st

from . import exports, queries
from .indicators import Indicator

_RUN_KEY = "_outcomes_release_for_this_run"
_V1_GUARD = "_outcomes_left_pages_directory_mode"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&\"'])")


def md(text) -> str:
    """Escape text from the publication for st.markdown (no links, images,
    HTML, colour directives or maths can be injected)."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return ""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


@functools.lru_cache(maxsize=1)
def favicon():
    """A plain local favicon: icons named like ':material/x:' or emoji are
    fetched from a CDN by the browser, which council networks block."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, 31, 31), radius=6, fill=(0, 114, 178, 255))
    for i, h in enumerate((10, 18, 24)):
        d.rectangle((6 + i * 8, 28 - h, 11 + i * 8, 27), fill=(255, 255, 255, 255))
    return img


# ---------------------------------------------------------------------------
# The release of this run
# ---------------------------------------------------------------------------

@contextmanager
def begin_run() -> Iterator[queries.Release | None]:
    """Resolve the publication once for this script run (used by app.py)."""
    try:
        rel: queries.Release | None = queries.open_release()
        err = None
    except queries.PublicationUnavailable as exc:
        rel, err = None, str(exc)
    st.session_state[_RUN_KEY] = (rel, err)
    st.session_state.pop(_V1_GUARD, None)
    try:
        yield rel
    finally:
        st.session_state.pop(_RUN_KEY, None)


def release() -> queries.Release:
    """The release this run reads; shows how to create one and stops the
    page if there is none. Checks sign-in first (app.py does too; this also
    covers a page run without app.py)."""
    from . import access

    access.gate()
    if _RUN_KEY in st.session_state:
        rel, err = st.session_state[_RUN_KEY]
    else:  # page run on its own (not through app.py)
        _leave_pages_directory_mode()
        try:
            rel, err = queries.open_release(), None
        except queries.PublicationUnavailable as exc:
            rel, err = None, str(exc)
        st.session_state[_RUN_KEY] = (rel, err)
    if rel is None:
        no_publication(err or "No publication found.")
        st.stop()
    return rel


def _leave_pages_directory_mode() -> None:
    """Streamlit's old multipage mode: on a fresh server whose first request
    is a page URL (e.g. /map), Streamlit sees the ``pages/`` folder beside
    app.py and runs the page file directly, without app.py, until some run
    calls st.navigation. Switch that mode off and rerun, so app.py (the frame,
    the release resolution and the navigation) runs the page."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover
        return
    if PagesManager.uses_pages_directory and not st.session_state.get(_V1_GUARD):
        PagesManager.uses_pages_directory = False
        st.session_state[_V1_GUARD] = True  # cleared by app.py; stops a loop if the mode comes back
        st.rerun()


def no_publication(message: str) -> None:
    st.warning("There is no publication to show yet.", icon=":material/info:")
    st.markdown(md(message))
    st.markdown("To make one from the synthetic demo data:")
    st.code("make demo\n# or, step by step:\noutcomes samples\noutcomes run\noutcomes serve", language="bash")


def header(title: str, rel: queries.Release, intro: str = "") -> None:
    st.title(title)
    st.caption(
        f"Data from {md(rel.label)}, published {rel.published_at:%d %b %Y %H:%M} UTC. "
        "Every figure on this page comes from this one release."
    )
    if intro:
        st.markdown(intro)


def footer_text(rel: queries.Release) -> str:
    return f"Source: outcomes publication, release {rel.release_id} (counts rounded and suppressed by policy)"


# ---------------------------------------------------------------------------
# Legends
# ---------------------------------------------------------------------------

def rounding_phrase(policy: dict | None) -> str:
    if not policy:
        return "published as counted"
    r = policy.get("rounding")
    base = policy.get("rounding_base")
    if r == "nearest":
        return f"rounded to the nearest {base}"
    if r == "midpoint":
        return f"shown as the midpoint of their {base}-wide band"
    return "published exactly (not rounded)"


def policy_sentence(policy: dict | None) -> str:
    if not policy:
        return "No disclosure policy applies (public reference data)."
    name = md(policy.get("name", "unnamed"))
    desc = md(policy.get("description", ""))
    return f"Policy in force: **{name}**. {desc}"


def legend(policies: list[dict | None], *, rates: bool = False, provisional: bool = True) -> None:
    """What 'suppressed', 'rounded' and 'provisional' mean under the policy in force."""
    seen, lines = set(), []
    for p in policies:
        if not p or p.get("name") in seen:
            continue
        seen.add(p.get("name"))
        zero = ("A suppressed count is at least 1 (zeros are shown)." if p.get("zeros_shown")
                else "A suppressed count may be zero.")
        lines.append(
            f"- **Suppressed** (grey crosses, grey areas, the word *suppressed* in tables): the count is hidden to "
            f"protect privacy, either because it is small or because it would let a small count be worked out "
            f"from totals. It is never zero or missing data. {zero} {policy_sentence(p)}\n"
            f"- **Rounded**: published counts are {rounding_phrase(p)}"
            + ("; rates, percentages and confidence intervals are calculated from these rounded counts"
               if rates else "") + "."
        )
    if provisional:
        lines.append("- **Provisional** (open markers, hatched bars, *provisional* in tables): the period is "
                     "incomplete; figures may rise as data arrive.")
    with st.expander("What *suppressed*, *rounded* and *provisional* mean", expanded=False, icon=":material/help:"):
        st.markdown("\n".join(lines) or "No disclosure policy applies.")


def coverage_note(ind: Indicator) -> None:
    st.caption(f"Coverage: {md(ind.coverage)}. Source: {md(ind.source)}.")


# ---------------------------------------------------------------------------
# Chart + table + CSV
# ---------------------------------------------------------------------------

def csv_bytes(table: pd.DataFrame) -> bytes:
    """Every CSV download is built here: spreadsheet-safe (see
    :mod:`dashboard.exports`)."""
    return exports.csv_bytes(table)


def with_release(table: pd.DataFrame, rel: queries.Release) -> pd.DataFrame:
    t = table.copy()
    t["release_id"] = rel.release_id
    return t


class _Prebuilt:
    """A figure spec that st.plotly_chart sends as it is.

    st.plotly_chart turns a dict into a ``go.Figure`` (validating and
    deep-copying every property: ~0.6 s for the 1,702 LSOA boundaries) and a
    ``go.Figure`` into a dict (deep copy again). The specs from
    :mod:`dashboard.charts` are built as plotly JSON and validated in the
    tests, so they are passed through as a figure whose ``to_dict`` is the
    spec itself."""

    _cls = None

    @classmethod
    def wrap(cls, spec: dict):
        if cls._cls is None:
            import plotly.graph_objects as go

            class PrebuiltFigure(go.Figure):
                def __init__(self, spec):  # noqa: D107 - deliberately no validation
                    self._prebuilt_spec = spec

                def to_dict(self):
                    return self._prebuilt_spec

            cls._cls = PrebuiltFigure
        return cls._cls(spec)


def plotly_chart(fig, *, key: str, alt: str) -> None:
    """Draw a figure: a spec dict from :mod:`dashboard.charts` (sent as it
    is) or a ``go.Figure``."""
    st.plotly_chart(_Prebuilt.wrap(fig) if isinstance(fig, dict) else fig, key=key, theme=None, alt=alt,
                    config={"displaylogo": False, "responsive": True})


def chart_block(
    fig,
    table: pd.DataFrame,
    *,
    rel: queries.Release,
    key: str,
    summary: str,
    filename: str,
    table_label: str = "Table behind this chart",
) -> None:
    """The chart, a text summary of it (its text alternative), and the exact
    table it shows one click away, with a CSV download of that table."""
    shown = with_release(table, rel)
    plotly_chart(fig, key=f"chart_{key}", alt=summary)
    st.caption(md(summary))
    with st.expander(table_label, icon=":material/table:"):
        st.dataframe(shown, hide_index=True, key=f"table_{key}")
        download(shown, rel=rel, key=key, filename=filename)


def download(shown: pd.DataFrame, *, rel: queries.Release, key: str, filename: str,
             label: str = "Download this table (CSV)") -> None:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{filename}_{rel.release_id}")
    # deferred: the CSV is written when the button is clicked, not on every render
    st.download_button(label, data=lambda: csv_bytes(shown), file_name=f"{safe}.csv", mime="text/csv",
                       key=f"download_{key}", icon=":material/download:", on_click="ignore")


def counts_text(values) -> list[str]:
    """Counts as shown in tables: the number, or 'suppressed' (never blank or 0)."""
    arr = pd.array(values, dtype="Int64")
    na = arr.isna()
    filled = arr.to_numpy(dtype="int64", na_value=0).astype(str)
    return np.where(na, "suppressed", filled).tolist()


def nums_text(values, digits: int = 1, missing: str = "") -> list[str]:
    arr = np.asarray(pd.array(values, dtype="Float64").to_numpy(dtype=float, na_value=np.nan))
    ok = ~np.isnan(arr)
    out = np.full(arr.shape, missing, dtype=object)
    if ok.any():
        out[ok] = np.char.mod(f"%.{digits}f", arr[ok])
    return out.tolist()


def values_text(df: pd.DataFrame, digits: int = 1) -> list[str]:
    """Values as shown in tables: the number, or why there is none (status)."""
    v = df["value"].to_numpy(float)
    ok = ~np.isnan(v)
    out = df["status"].astype(str).to_numpy(dtype=object).copy()
    if ok.any():
        out[ok] = np.char.mod(f"%.{digits}f", v[ok])
    return out.tolist()


def provisional_text(values) -> list[str]:
    return np.where(np.asarray(values, dtype=bool), "provisional", "").tolist()


def fmt_count(v) -> str:
    return "suppressed" if v is None or pd.isna(v) else f"{int(v)}"


def fmt_num(v, digits: int = 1, missing: str = "") -> str:
    return missing if v is None or pd.isna(v) else f"{float(v):.{digits}f}"


def value_text(row, digits: int = 1) -> str:
    """The value as shown in tables: the number, or why there is none."""
    if pd.notna(row["value"]):
        return f"{row['value']:.{digits}f}"
    return str(row["status"])
