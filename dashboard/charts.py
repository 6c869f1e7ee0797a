"""Charts: plain functions DataFrame -> plotly figure (no Streamlit, no I/O).

Conventions shared by every chart:

* colour-blind-safe colours (Okabe-Ito for series, Paul Tol / Okabe-Ito for
  categories, Viridis for the map), and categories never told by colour
  alone (symbols, text in hovers and in the table behind each chart);
* suppressed values are drawn as grey crosses on the axis and named in the
  legend ("Suppressed"), never as zero or a silent gap; provisional periods
  have open markers and their own legend entry;
* every figure carries a footer naming the release, so an exported image
  says where it came from;
* text that comes from the publication (area names, titles) is HTML-escaped
  before plotly sees it (plotly renders a subset of HTML, links included).
"""

from __future__ import annotations

import html
import math
from typing import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

#: Okabe & Ito (2008) colour-blind-safe palette (yellow left out: too light on white)
SERIES_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
COMPARATOR_COLOUR = "#3B3B3B"
SUPPRESSED_COLOUR = "#767676"
NOT_PUBLISHED_COLOUR = "#F2F2F2"
NO_RATE_COLOUR = "#BDBDBD"
#: comparison categories (contrast >= 3:1 on white; also told apart by symbol/text)
CATEGORY_COLOURS = {
    "Better": "#0072B2",
    "Similar": "#F0E442",
    "Worse": "#D55E00",
    "Lower": "#332288",
    "Higher": "#AA4499",
    "Not compared": "#BDBDBD",
    "Suppressed": SUPPRESSED_COLOUR,
}
CATEGORY_SYMBOLS = {
    "Better": "diamond", "Similar": "circle", "Worse": "square", "Lower": "triangle-down",
    "Higher": "triangle-up", "Not compared": "circle-open", "Suppressed": "x",
}
FUNNEL_STYLE = {  # label -> (colour, symbol)
    "High (0.001)": ("#AA4499", "triangle-up"),
    "High (0.025)": ("#AA4499", "triangle-up-open"),
    "Not significant": ("#5A5A5A", "circle"),
    "Low (0.025)": ("#332288", "triangle-down-open"),
    "Low (0.001)": ("#332288", "triangle-down"),
}
FUNNEL_NAMES = {
    "High (0.001)": "High: above the 99.8% limit",
    "High (0.025)": "High: above the 95% limit",
    "Not significant": "Within the 95% limits",
    "Low (0.025)": "Low: below the 95% limit",
    "Low (0.001)": "Low: below the 99.8% limit",
}
FONT = dict(family="Source Sans Pro, Arial, sans-serif", size=14, color="#1F1F1F")


def esc(text) -> str:
    """Escape publication text for plotly (which renders a subset of HTML)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return html.escape(str(text), quote=True)


def fmt(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v):
        return "-"
    return f"{v:,.{digits}f}"


def _base_layout(fig: go.Figure, title: str, footer: str, height: int = 540, bottom: int = 110) -> go.Figure:
    """Title (with the release as its subtitle, so an exported image says
    where it came from), fonts, and the legend under the plot."""
    top = 86 if footer else 60
    plot_h = max(height - top - bottom, 100)
    title_spec = dict(text=title, x=0, xanchor="left", font=dict(size=17))
    if footer:
        title_spec["subtitle"] = dict(text=footer, font=dict(size=12, color="#4A4A4A"))
    fig.update_layout(
        template="plotly_white",
        title=title_spec,
        font=FONT,
        height=height,
        margin=dict(l=10, r=10, t=top, b=bottom),
        legend=dict(orientation="h", yanchor="top", y=-48 / plot_h, xanchor="left", x=0),
        hoverlabel=dict(font=dict(size=14)),
    )
    return fig


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Start/stop index pairs of consecutive True runs."""
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def trend_figure(
    df: pd.DataFrame,
    *,
    title: str,
    y_title: str,
    footer: str = "",
    show_ci: bool = True,
) -> go.Figure:
    """Lines over time with 95% CI bands.

    ``df``: one row per series and period with columns ``series`` (name),
    ``role`` ('area' or 'comparator'), ``period_start``, ``period``,
    ``value``, ``lower``, ``upper``, ``status``, ``provisional``.
    """
    fig = go.Figure()
    series_names = list(dict.fromkeys(df.loc[df["role"] == "area", "series"]))
    colours = {s: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(series_names)}
    order = series_names + list(dict.fromkeys(df.loc[df["role"] == "comparator", "series"]))
    any_prov = False
    any_supp = False
    for name in order:
        d = df[df["series"] == name].sort_values("period_start")
        comp = (d["role"] == "comparator").all()
        colour = COMPARATOR_COLOUR if comp else colours[name]
        x = d["period_start"].to_numpy()
        v = d["value"].to_numpy(float)
        lo, hi = d["lower"].to_numpy(float), d["upper"].to_numpy(float)
        label = esc(name) + (" (comparator)" if comp else "")
        if show_ci:
            ok = ~np.isnan(lo) & ~np.isnan(hi)
            for a, b in _runs(ok):
                xs = np.concatenate([x[a:b], x[a:b][::-1]])
                ys = np.concatenate([hi[a:b], lo[a:b][::-1]])
                fig.add_trace(go.Scatter(
                    x=xs, y=ys, fill="toself", mode="lines", line=dict(width=0),
                    fillcolor=_rgba(colour, 0.12 if comp else 0.18), hoverinfo="skip",
                    legendgroup=label, showlegend=False, name=f"{label} 95% CI"))
        prov = d["provisional"].to_numpy(bool)
        any_prov |= bool(prov.any())
        custom = np.stack([
            np.array([esc(p) for p in d["period"]], dtype=object),
            np.array([fmt(a) for a in lo], dtype=object),
            np.array([fmt(a) for a in hi], dtype=object),
            np.where(prov, " (provisional)", ""),
        ], axis=-1)
        fig.add_trace(go.Scatter(
            x=x, y=v, mode="lines+markers", name=label, legendgroup=label,
            line=dict(color=colour, width=2.5, dash="dash" if comp else "solid"),
            marker=dict(size=7, color=colour, symbol=np.where(prov, "circle-open", "circle"),
                        line=dict(width=2, color=colour)),
            customdata=custom, connectgaps=False,
            hovertemplate=f"<b>{label}</b><br>%{{customdata[0]}}%{{customdata[3]}}<br>"
                          f"{esc(y_title)}: %{{y:,.1f}}<br>95% CI %{{customdata[1]}} to %{{customdata[2]}}"
                          "<extra></extra>"))
        supp = d["status"].to_numpy() == "suppressed"
        if supp.any():
            any_supp = True
            fig.add_trace(go.Scatter(
                x=x[supp], y=np.zeros(int(supp.sum())), mode="markers", name="Suppressed",
                legendgroup="suppressed", showlegend=False,
                marker=dict(symbol="x-thin", size=11, line=dict(width=2, color=colour)),
                customdata=np.array([esc(p) for p in d["period"][supp]], dtype=object),
                hovertemplate=f"<b>{label}</b><br>%{{customdata}}: suppressed<extra></extra>"))
    if any_supp:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="Suppressed (crosses on the axis)",
                                 legendgroup="suppressed",
                                 marker=dict(symbol="x-thin", size=11, line=dict(width=2, color=SUPPRESSED_COLOUR))))
    if any_prov:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="Provisional (open markers)",
                                 marker=dict(symbol="circle-open", size=9, line=dict(width=2, color=SUPPRESSED_COLOUR))))
    _base_layout(fig, esc(title), footer)
    fig.update_yaxes(title=esc(y_title), rangemode="tozero", zeroline=True, zerolinecolor="#8A8A8A")
    fig.update_xaxes(title=None)
    return fig


def ranked_figure(
    df: pd.DataFrame,
    *,
    benchmark: float | None,
    benchmark_name: str,
    title: str,
    x_title: str,
    footer: str = "",
    max_labelled: int = 40,
) -> go.Figure:
    """Areas ranked by value with 95% CIs, coloured by comparison category.

    ``df``: ``area_name``, ``value``, ``lower``, ``upper``, ``category``,
    ``status``. Up to ``max_labelled`` areas: horizontal bars with names;
    more: a caterpillar plot (rank on the x axis, names in the hover).
    Suppressed areas are listed in the legend and the table, not drawn as bars.
    """
    d = df.copy()
    shown = d[d["value"].notna()].sort_values("value", ascending=True).reset_index(drop=True)
    supp = d[d["value"].isna()]
    fig = go.Figure()
    labelled = len(shown) <= max_labelled
    names = [esc(n) for n in shown["area_name"]]
    for cat in CATEGORY_COLOURS:
        sel = shown["category"] == cat
        if not sel.any():
            continue
        s = shown[sel]
        err = dict(type="data", symmetric=False, array=(s["upper"] - s["value"]).to_numpy(float),
                   arrayminus=(s["value"] - s["lower"]).to_numpy(float), color="#1F1F1F", thickness=1.2, width=3)
        custom = np.stack([np.array([esc(n) for n in s["area_name"]], dtype=object),
                           np.array([fmt(a) for a in s["lower"]], dtype=object),
                           np.array([fmt(a) for a in s["upper"]], dtype=object)], axis=-1)
        hover = ("<b>%{customdata[0]}</b><br>" + esc(x_title) + ": %{" + ("x" if labelled else "y") +
                 ":,.1f}<br>95% CI %{customdata[1]} to %{customdata[2]}<br>" + cat + "<extra></extra>")
        if labelled:
            fig.add_trace(go.Bar(
                y=[names[i] for i in s.index], x=s["value"], orientation="h", name=cat,
                marker=dict(color=CATEGORY_COLOURS[cat], line=dict(color="#1F1F1F", width=0.5)),
                error_x=err, customdata=custom, hovertemplate=hover))
        else:
            fig.add_trace(go.Scatter(
                x=(s.index + 1).to_numpy(), y=s["value"], mode="markers", name=cat,
                marker=dict(color=CATEGORY_COLOURS[cat], symbol=CATEGORY_SYMBOLS[cat], size=6),
                error_y=dict(type="data", symmetric=False, array=(s["upper"] - s["value"]).to_numpy(float),
                             arrayminus=(s["value"] - s["lower"]).to_numpy(float),
                             color=_rgba(CATEGORY_COLOURS[cat], 0.5), thickness=1, width=0),
                customdata=custom, hovertemplate=hover))
    if len(supp):
        supp_name = f"Suppressed: {len(supp)} area{'s' if len(supp) != 1 else ''}"
        if labelled:
            snames = [esc(n) for n in supp["area_name"]]
            names = snames + names
            fig.add_trace(go.Scatter(
                x=[0] * len(supp), y=snames, mode="markers+text", name=supp_name, text=["suppressed"] * len(supp),
                cliponaxis=False,
                textposition="middle right", textfont=dict(color="#3A3A3A", size=13),
                marker=dict(symbol="x-thin", size=11, line=dict(width=2, color=SUPPRESSED_COLOUR)),
                hovertemplate="<b>%{y}</b><br>suppressed<extra></extra>"))
        else:
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="markers", name=supp_name + " (listed in the table)",
                marker=dict(symbol="x-thin", size=11, line=dict(width=2, color=SUPPRESSED_COLOUR))))
    height = max(420, 22 * (len(shown) + len(supp)) + 220) if labelled else 560
    _base_layout(fig, esc(title), footer, height=height)
    if benchmark is not None and not math.isnan(benchmark):
        line = dict(color=COMPARATOR_COLOUR, width=2, dash="dash")
        if labelled:
            fig.add_shape(type="line", x0=benchmark, x1=benchmark, yref="paper", y0=0, y1=1, line=line)
        else:
            fig.add_shape(type="line", y0=benchmark, y1=benchmark, xref="paper", x0=0, x1=1, line=line)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line,
                                 name=f"{esc(benchmark_name)} (comparator): {fmt(benchmark)}"))
    if labelled:
        fig.update_xaxes(title=esc(x_title), rangemode="tozero")
        fig.update_yaxes(title=None, automargin=True, categoryorder="array", categoryarray=names)
        fig.update_layout(bargap=0.25)
    else:
        fig.update_xaxes(title="Rank (lowest to highest)")
        fig.update_yaxes(title=esc(x_title), rangemode="tozero")
    return fig


def funnel_figure(
    points: pd.DataFrame,
    limits: pd.DataFrame,
    *,
    benchmark: float,
    benchmark_name: str,
    title: str,
    x_title: str,
    y_title: str,
    footer: str = "",
) -> go.Figure:
    """Funnel plot: value against denominator with 95% and 99.8% control limits.

    ``points``: ``area_name``, ``denominator``, ``value``, ``significance``
    (labels of :data:`pipelines.stats.FUNNEL_LABELS`). ``limits``: output of
    :func:`pipelines.stats.funnel_limits` (``denominator``, ``lower_95``,
    ``upper_95``, ``lower_99_8``, ``upper_99_8``).
    """
    fig = go.Figure()
    lim = limits.sort_values("denominator")
    for col, name, dash in (("upper_99_8", "99.8% limits", "dot"), ("lower_99_8", None, "dot"),
                            ("upper_95", "95% limits", "dash"), ("lower_95", None, "dash")):
        fig.add_trace(go.Scatter(x=lim["denominator"], y=lim[col], mode="lines",
                                 line=dict(color="#4A4A4A", width=1.5, dash=dash),
                                 name=name or col, showlegend=name is not None,
                                 legendgroup=dash, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[lim["denominator"].min(), lim["denominator"].max()], y=[benchmark, benchmark],
                             mode="lines", line=dict(color=COMPARATOR_COLOUR, width=2),
                             name=f"{esc(benchmark_name)} (comparator): {fmt(benchmark)}", hoverinfo="skip"))
    for label, (colour, symbol) in FUNNEL_STYLE.items():
        s = points[points["significance"] == label]
        if s.empty:
            continue
        fig.add_trace(go.Scatter(
            x=s["denominator"], y=s["value"], mode="markers", name=FUNNEL_NAMES[label],
            marker=dict(color=colour, symbol=symbol, size=10, line=dict(width=1.5, color=colour)),
            customdata=np.array([esc(n) for n in s["area_name"]], dtype=object),
            hovertemplate="<b>%{customdata}</b><br>" + esc(y_title) + ": %{y:,.1f}<br>" + esc(x_title)
                          + ": %{x:,.0f}<br>" + FUNNEL_NAMES[label] + "<extra></extra>"))
    _base_layout(fig, esc(title), footer)
    fig.update_xaxes(title=esc(x_title), rangemode="tozero")
    fig.update_yaxes(title=esc(y_title), rangemode="tozero")
    return fig


def _zoom_for(bounds: tuple[float, float, float, float], width_px: int = 640, height_px: int = 480) -> tuple[dict, float]:
    w, s, e, n = bounds
    centre = {"lon": (w + e) / 2, "lat": (s + n) / 2}
    lon_span = max(e - w, 1e-4)
    lat_rad = math.radians(centre["lat"])
    # Web-Mercator as MapLibre draws it: 512 px span 360 degrees at zoom 0
    lat_span_merc = max(abs(math.log(math.tan(math.pi / 4 + math.radians(n) / 2)) -
                            math.log(math.tan(math.pi / 4 + math.radians(s) / 2))), 1e-6)
    z_lon = math.log2(width_px * 360 / (512 * lon_span))
    z_lat = math.log2(height_px * 2 * math.pi / (512 * lat_span_merc))
    del lat_rad
    return centre, max(min(z_lon, z_lat) - 0.1, 1)


def map_figure(
    df: pd.DataFrame,
    features: dict[str, dict],
    *,
    title: str,
    value_title: str,
    attribution: str,
    footer: str = "",
    focus_codes: Iterable[str] | None = None,
    suppressed_label: str = "Suppressed",
) -> go.Figure:
    """Choropleth on MapLibre with no tiles (``white-bg``): draws offline.

    ``df``: ``area_code``, ``area_name``, ``value``, ``lower``, ``upper``,
    ``count``, ``status`` for the areas of one level in one period.
    ``features``: area_code -> GeoJSON feature (every area of the level in the
    reference pack). Areas of the pack not in ``df`` are drawn as "not
    published"; suppressed areas in grey; areas with a count but no rate
    (no population denominator) in light grey.
    """
    fig = go.Figure()
    d = df[df["area_code"].isin(features)].copy()
    valued = d[d["value"].notna()]
    supp = d[d["status"] == "suppressed"]
    norate = d[(d["value"].isna()) & (d["status"] != "suppressed")]
    published = set(d["area_code"])
    missing = [c for c in features if c not in published]

    def fc(codes) -> dict:
        return {"type": "FeatureCollection", "features": [features[c] for c in codes]}

    def flat(name: str, codes: list[str], colour: str, line_colour: str, hover: list[str]) -> None:
        if not codes:
            return
        fig.add_trace(go.Choroplethmap(
            geojson=fc(codes), locations=codes, z=[1] * len(codes), featureidkey="properties.area_code",
            colorscale=[[0, colour], [1, colour]], showscale=False, showlegend=True, name=name,
            marker=dict(line=dict(color=line_colour, width=0.6), opacity=0.95),
            customdata=np.array(hover, dtype=object), hovertemplate="%{customdata}<extra></extra>"))

    flat("Not published for this area (outside the source's coverage)", missing, NOT_PUBLISHED_COLOUR, "#9A9A9A",
         [f"<b>{esc(features[c]['properties']['area_name'])}</b><br>not published" for c in missing])
    if len(valued):
        codes = valued["area_code"].tolist()
        custom = np.stack([
            np.array([esc(n) for n in valued["area_name"]], dtype=object),
            np.array([fmt(a) for a in valued["lower"]], dtype=object),
            np.array([fmt(a) for a in valued["upper"]], dtype=object),
            np.array(["suppressed" if pd.isna(c) else f"{int(c):,}" for c in valued["count"]], dtype=object),
        ], axis=-1)
        fig.add_trace(go.Choroplethmap(
            geojson=fc(codes), locations=codes, z=valued["value"].to_numpy(float),
            featureidkey="properties.area_code", colorscale="Viridis", name=esc(value_title),
            marker=dict(line=dict(color="#FFFFFF", width=0.6), opacity=0.9),
            colorbar=dict(title=dict(text=esc(value_title), side="right"), thickness=14, len=0.75),
            customdata=custom, showlegend=False,
            hovertemplate="<b>%{customdata[0]}</b><br>" + esc(value_title) + ": %{z:,.1f}<br>95% CI "
                          "%{customdata[1]} to %{customdata[2]}<br>count (rounded): %{customdata[3]}<extra></extra>"))
    flat(suppressed_label, supp["area_code"].tolist(), SUPPRESSED_COLOUR, "#FFFFFF",
         [f"<b>{esc(n)}</b><br>suppressed" for n in supp["area_name"]])
    flat("Count published, no population denominator (no rate)", norate["area_code"].tolist(), NO_RATE_COLOUR,
         "#FFFFFF", [f"<b>{esc(n)}</b><br>count (rounded): {'-' if pd.isna(c) else f'{int(c):,}'}; no rate"
                     for n, c in zip(norate["area_name"], norate["count"])])
    focus = [c for c in (focus_codes or published) if c in features] or list(features)
    from .geo import bounds as _bounds

    b = _bounds([features[c] for c in focus])
    centre, zoom = _zoom_for(b) if b else ({"lon": -2.3, "lat": 53.5}, 8.5)
    _base_layout(fig, esc(title), footer, height=680, bottom=96)
    fig.update_layout(
        map=dict(style="white-bg", center=centre, zoom=zoom),
        margin=dict(l=0, r=0),
        legend=dict(orientation="h", y=-0.02, yanchor="top", x=0, xanchor="left", bgcolor="rgba(255,255,255,0.9)"),
    )
    fig.add_annotation(text=esc(attribution), xref="paper", yref="paper", name="attribution",
                       x=1, y=0, xanchor="right", yanchor="bottom", showarrow=False, bgcolor="rgba(255,255,255,0.85)",
                       font=dict(size=12, color="#1F1F1F"), align="right")
    return fig


def births_figure(
    df: pd.DataFrame,
    *,
    title: str,
    footer: str = "",
    extract_date: pd.Timestamp | None = None,
    y_title: str = "Expected births (rounded)",
) -> go.Figure:
    """Expected births by area and due period as grouped bars.

    ``df``: ``area_name``, ``period_start``, ``period``, ``count``,
    ``provisional``, ``status``. Provisional bars are hatched; suppressed
    values are crosses on the axis; the extract date is marked (bars after it
    are looking forward).
    """
    fig = go.Figure()
    names = list(dict.fromkeys(df["area_name"]))
    for i, name in enumerate(names):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        d = df[df["area_name"] == name].sort_values("period_start")
        prov = d["provisional"].to_numpy(bool)
        label = esc(name)
        fig.add_trace(go.Bar(
            x=d["period_start"], y=d["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
            name=label, legendgroup=label, marker=dict(
                color=colour, line=dict(color=colour, width=1),
                pattern=dict(shape=np.where(prov, "/", "").tolist(), fgcolor="#FFFFFF", solidity=0.35)),
            customdata=np.stack([np.array([esc(p) for p in d["period"]], dtype=object),
                                 np.where(prov, " (provisional)", "")], axis=-1),
            hovertemplate=f"<b>{label}</b><br>%{{customdata[0]}}%{{customdata[1]}}<br>"
                          f"{esc(y_title)}: %{{y:,}}<extra></extra>"))
        supp = d["status"].to_numpy() == "suppressed"
        if supp.any():
            fig.add_trace(go.Scatter(
                x=d["period_start"][supp], y=np.zeros(int(supp.sum())), mode="markers", showlegend=False,
                legendgroup=label, name=f"{label} suppressed",
                marker=dict(symbol="x-thin", size=11, line=dict(width=2, color=colour)),
                customdata=np.array([esc(p) for p in d["period"][supp]], dtype=object),
                hovertemplate=f"<b>{label}</b><br>%{{customdata}}: suppressed<extra></extra>"))
    if (df["status"] == "suppressed").any():
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="Suppressed (crosses on the axis)",
                                 marker=dict(symbol="x-thin", size=11, line=dict(width=2, color=SUPPRESSED_COLOUR))))
    if df["provisional"].any():
        fig.add_trace(go.Bar(x=[None], y=[None], name="Provisional (hatched)",
                             marker=dict(color=SUPPRESSED_COLOUR, pattern=dict(shape="/", fgcolor="#FFFFFF",
                                                                               solidity=0.35))))
    _base_layout(fig, esc(title), footer)
    fig.update_layout(barmode="group", bargap=0.15)
    fig.update_yaxes(title=esc(y_title), rangemode="tozero")
    if extract_date is not None:
        x = pd.Timestamp(extract_date)
        fig.add_shape(type="line", x0=x, x1=x, yref="paper", y0=0, y1=1,
                      line=dict(color="#1F1F1F", width=2, dash="dot"))
        fig.add_annotation(x=x, yref="paper", y=1.0, text=f"extract date {x.date()}: looking forward \u2192",
                           showarrow=False, xanchor="left", yanchor="bottom", font=dict(size=12))
    return fig
