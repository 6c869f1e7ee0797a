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

Each function returns the figure as plotly's JSON form (a dict with ``data``
and ``layout``: exactly what plotly.js draws). Building that dict directly is
several times faster than building ``plotly.graph_objects`` (which validates
and deep-copies every property, the map's boundaries included) and keeps the
dashboard within its latency targets; ``go.Figure(spec)`` turns any of them
into a validated figure object (the tests do that).
"""

from __future__ import annotations

import html
import math
from typing import Iterable

import numpy as np
import pandas as pd

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
    if v is None or v is pd.NA or v != v:
        return "-"
    return f"{v:,.{digits}f}"


def _fmts(values, digits: int = 1) -> list[str]:
    """fmt over an array (NaN -> '-')."""
    return ["-" if v != v else f"{v:,.{digits}f}" for v in np.asarray(values, dtype=float).tolist()]


def _escs(values) -> list[str]:
    return [html.escape(str(v), quote=True) for v in values]


Figure = dict  # plotly figure JSON: {"data": [...], "layout": {...}}


def _list(a) -> list:
    """A JSON-ready list: NaN/NA -> None, numpy scalars -> Python."""
    arr = np.asarray(a, dtype=object) if not isinstance(a, np.ndarray) else a
    if arr.dtype.kind == "f":
        return [None if v != v else float(v) for v in arr.tolist()]
    if arr.dtype.kind == "M":
        return [None if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d") for v in arr]
    return [None if (v is None or (isinstance(v, float) and v != v) or v is pd.NA) else
            (v.item() if hasattr(v, "item") else v) for v in arr.tolist()]


def _dates(a) -> list:
    return pd.DatetimeIndex(a).strftime("%Y-%m-%d").tolist()


def _legend_gap(layout: dict, px: int) -> None:
    """Put the legend ``px`` pixels below the plot area (room for tick labels
    and an axis title)."""
    m = layout["margin"]
    plot_h = max(layout["height"] - m["t"] - m["b"], 100)
    layout["legend"]["y"] = -px / plot_h


def _base_layout(title: str, footer: str, height: int = 540, bottom: int = 110) -> dict:
    """Title (with the release as its subtitle, so an exported image says
    where it came from), fonts, axes styling and the legend under the plot."""
    top = 86 if footer else 60
    plot_h = max(height - top - bottom, 100)
    title_spec: dict = {"text": title, "x": 0, "xanchor": "left", "xref": "paper", "font": {"size": 17}}
    if footer:
        title_spec["subtitle"] = {"text": footer, "font": {"size": 12, "color": "#4A4A4A"}}
    axis = {"gridcolor": "#E5E5E5", "linecolor": "#8A8A8A", "zerolinecolor": "#8A8A8A",
            "ticks": "outside", "tickcolor": "#8A8A8A", "automargin": True, "title": {"text": ""}}
    return {
        "title": title_spec,
        "font": FONT,
        "height": height,
        "margin": {"l": 10, "r": 10, "t": top, "b": bottom},
        "paper_bgcolor": "#FFFFFF",
        "plot_bgcolor": "#FFFFFF",
        "xaxis": dict(axis),
        "yaxis": dict(axis),
        "legend": {"orientation": "h", "yanchor": "top", "y": -48 / plot_h, "xanchor": "left", "x": 0},
        "hoverlabel": {"font": {"size": 14}},
        "hovermode": "closest",
        "shapes": [],
        "annotations": [],
    }


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


def _legend_only(name: str, symbol: str, colour: str = SUPPRESSED_COLOUR, group: str | None = None) -> dict:
    t = {"type": "scatter", "x": [None], "y": [None], "mode": "markers", "name": name,
         "marker": {"symbol": symbol, "size": 11, "color": colour, "line": {"width": 2, "color": colour}},
         "hoverinfo": "skip"}
    if group:
        t["legendgroup"] = group
    return t


def trend_figure(
    df: pd.DataFrame,
    *,
    title: str,
    y_title: str,
    footer: str = "",
    show_ci: bool = True,
) -> Figure:
    """Lines over time with 95% CI bands.

    ``df``: one row per series and period with columns ``series`` (name),
    ``role`` ('area' or 'comparator'), ``period_start``, ``period``,
    ``value``, ``lower``, ``upper``, ``status``, ``provisional``.
    """
    data: list[dict] = []
    series_names = list(dict.fromkeys(df.loc[df["role"] == "area", "series"]))
    colours = {s: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, s in enumerate(series_names)}
    order = series_names + list(dict.fromkeys(df.loc[df["role"] == "comparator", "series"]))
    any_prov = any_supp = False
    for name in order:
        d = df[df["series"] == name].sort_values("period_start")
        comp = bool((d["role"] == "comparator").all())
        colour = COMPARATOR_COLOUR if comp else colours[name]
        x = np.asarray(_dates(d["period_start"]), dtype=object)
        v = d["value"].to_numpy(float)
        lo, hi = d["lower"].to_numpy(float), d["upper"].to_numpy(float)
        label = esc(name) + (" (comparator)" if comp else "")
        if show_ci:
            ok = ~np.isnan(lo) & ~np.isnan(hi)
            for a, b in _runs(ok):
                data.append({
                    "type": "scatter", "x": list(x[a:b]) + list(x[a:b][::-1]),
                    "y": _list(np.concatenate([hi[a:b], lo[a:b][::-1]])), "fill": "toself", "mode": "lines",
                    "line": {"width": 0}, "fillcolor": _rgba(colour, 0.12 if comp else 0.18), "hoverinfo": "skip",
                    "legendgroup": label, "showlegend": False, "name": f"{label} 95% CI"})
        prov = d["provisional"].to_numpy(bool)
        any_prov |= bool(prov.any())
        custom = [list(t) for t in zip(_escs(d["period"]), _fmts(lo), _fmts(hi),
                                       [" (provisional)" if pv else "" for pv in prov])]
        data.append({
            "type": "scatter", "x": list(x), "y": _list(v), "mode": "lines+markers", "name": label,
            "legendgroup": label,
            "line": {"color": colour, "width": 2.5, "dash": "dash" if comp else "solid"},
            "marker": {"size": 7, "color": colour, "symbol": ["circle-open" if p else "circle" for p in prov],
                       "line": {"width": 2, "color": colour}},
            "customdata": custom, "connectgaps": False,
            "hovertemplate": f"<b>{label}</b><br>%{{customdata[0]}}%{{customdata[3]}}<br>"
                             f"{esc(y_title)}: %{{y:,.1f}}<br>95% CI %{{customdata[1]}} to %{{customdata[2]}}"
                             "<extra></extra>"})
        supp = d["status"].to_numpy() == "suppressed"
        if supp.any():
            any_supp = True
            data.append({
                "type": "scatter", "x": list(x[supp]), "y": [0] * int(supp.sum()), "mode": "markers",
                "name": "Suppressed", "legendgroup": "suppressed", "showlegend": False, "cliponaxis": False,
                "marker": {"symbol": "x-thin", "size": 11, "line": {"width": 2, "color": colour}},
                "customdata": [esc(p) for p in d["period"].to_numpy()[supp]],
                "hovertemplate": f"<b>{label}</b><br>%{{customdata}}: suppressed<extra></extra>"})
    if any_supp:
        data.append(_legend_only("Suppressed (crosses on the axis)", "x-thin", group="suppressed"))
    if any_prov:
        data.append(_legend_only("Provisional (open markers)", "circle-open"))
    layout = _base_layout(esc(title), footer)
    layout["yaxis"].update({"title": {"text": esc(y_title)}, "rangemode": "tozero", "zeroline": True})
    layout["xaxis"].update({"type": "date"})
    return {"data": data, "layout": layout}


def ranked_figure(
    df: pd.DataFrame,
    *,
    benchmark: float | None,
    benchmark_name: str,
    title: str,
    x_title: str,
    footer: str = "",
    max_labelled: int = 40,
) -> Figure:
    """Areas ranked by value with 95% CIs, coloured by comparison category.

    ``df``: ``area_name``, ``value``, ``lower``, ``upper``, ``category``,
    ``status``. Up to ``max_labelled`` areas: horizontal bars with names and
    the suppressed areas listed at the foot with a cross and the word
    *suppressed*; more: a caterpillar plot (rank on the x axis, names in the
    hover; suppressed areas named in the legend and the table).
    """
    shown = df[df["value"].notna()].sort_values("value", ascending=True).reset_index(drop=True)
    supp = df[df["value"].isna()]
    data: list[dict] = []
    labelled = len(shown) <= max_labelled
    names = _escs(shown["area_name"])
    cats = shown["category"].to_numpy()
    for cat in CATEGORY_COLOURS:
        sel = np.flatnonzero(cats == cat)
        if not len(sel):
            continue
        s = shown.iloc[sel]
        val, lo, hi = (s[c].to_numpy(float) for c in ("value", "lower", "upper"))
        custom = [list(t) for t in zip(_escs(s["area_name"]), _fmts(lo), _fmts(hi))]
        hover = ("<b>%{customdata[0]}</b><br>" + esc(x_title) + ": %{" + ("x" if labelled else "y") +
                 ":,.1f}<br>95% CI %{customdata[1]} to %{customdata[2]}<br>" + cat + "<extra></extra>")
        if labelled:
            data.append({
                "type": "bar", "orientation": "h", "y": [names[i] for i in sel], "x": _list(val), "name": cat,
                "marker": {"color": CATEGORY_COLOURS[cat], "line": {"color": "#1F1F1F", "width": 0.5}},
                "error_x": {"type": "data", "symmetric": False, "array": _list(hi - val),
                            "arrayminus": _list(val - lo), "color": "#1F1F1F", "thickness": 1.2, "width": 3},
                "customdata": custom, "hovertemplate": hover})
        else:
            data.append({
                "type": "scatter", "x": (sel + 1).tolist(), "y": _list(val), "mode": "markers", "name": cat,
                "marker": {"color": CATEGORY_COLOURS[cat], "symbol": CATEGORY_SYMBOLS[cat], "size": 6},
                "error_y": {"type": "data", "symmetric": False, "array": _list(hi - val),
                            "arrayminus": _list(val - lo), "color": _rgba(CATEGORY_COLOURS[cat], 0.5),
                            "thickness": 1, "width": 0},
                "customdata": custom, "hovertemplate": hover})
    if len(supp):
        supp_name = f"Suppressed: {len(supp)} area{'s' if len(supp) != 1 else ''}"
        if labelled:
            snames = [esc(n) for n in supp["area_name"]]
            names = snames + names
            data.append({
                "type": "scatter", "x": [0] * len(supp), "y": snames, "mode": "markers+text", "name": supp_name,
                "text": ["suppressed"] * len(supp), "cliponaxis": False, "textposition": "middle right",
                "textfont": {"color": "#3A3A3A", "size": 13},
                "marker": {"symbol": "x-thin", "size": 11, "line": {"width": 2, "color": SUPPRESSED_COLOUR}},
                "hovertemplate": "<b>%{y}</b><br>suppressed<extra></extra>"})
        else:
            data.append(_legend_only(supp_name + " (listed in the table)", "x-thin"))
    height = max(420, 22 * (len(shown) + len(supp)) + 220) if labelled else 560
    layout = _base_layout(esc(title), footer, height=height)
    if benchmark is not None and not math.isnan(benchmark):
        line = {"color": COMPARATOR_COLOUR, "width": 2, "dash": "dash"}
        if labelled:
            layout["shapes"].append({"type": "line", "x0": benchmark, "x1": benchmark, "yref": "paper",
                                     "y0": 0, "y1": 1, "line": line})
        else:
            layout["shapes"].append({"type": "line", "y0": benchmark, "y1": benchmark, "xref": "paper",
                                     "x0": 0, "x1": 1, "line": line})
        data.append({"type": "scatter", "x": [None], "y": [None], "mode": "lines", "line": line,
                     "name": f"{esc(benchmark_name)} (comparator): {fmt(benchmark)}"})
    if labelled:
        layout["xaxis"].update({"title": {"text": esc(x_title)}, "rangemode": "tozero"})
        layout["yaxis"].update({"categoryorder": "array", "categoryarray": names, "type": "category"})
        layout["bargap"] = 0.25
    else:
        layout["xaxis"].update({"title": {"text": "Rank (lowest to highest)"}})
        layout["yaxis"].update({"title": {"text": esc(x_title)}, "rangemode": "tozero"})
    layout["margin"]["b"] = 140
    _legend_gap(layout, 78)
    return {"data": data, "layout": layout}


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
) -> Figure:
    """Funnel plot: value against denominator with 95% and 99.8% control limits.

    ``points``: ``area_name``, ``denominator``, ``value``, ``significance``
    (labels of :data:`pipelines.stats.FUNNEL_LABELS`). ``limits``: output of
    :func:`pipelines.stats.funnel_limits` (``denominator``, ``lower_95``,
    ``upper_95``, ``lower_99_8``, ``upper_99_8``).
    """
    data: list[dict] = []
    lim = limits.sort_values("denominator")
    x = _list(lim["denominator"].to_numpy(float))
    for col, name, dash in (("upper_99_8", "99.8% limits", "dot"), ("lower_99_8", None, "dot"),
                            ("upper_95", "95% limits", "dash"), ("lower_95", None, "dash")):
        data.append({"type": "scatter", "x": x, "y": _list(lim[col].to_numpy(float)), "mode": "lines",
                     "line": {"color": "#4A4A4A", "width": 1.5, "dash": dash}, "name": name or col,
                     "showlegend": name is not None, "legendgroup": dash, "hoverinfo": "skip"})
    data.append({"type": "scatter", "x": [x[0], x[-1]], "y": [benchmark, benchmark], "mode": "lines",
                 "line": {"color": COMPARATOR_COLOUR, "width": 2},
                 "name": f"{esc(benchmark_name)} (comparator): {fmt(benchmark)}", "hoverinfo": "skip"})
    sig = points["significance"].to_numpy()
    for label, (colour, symbol) in FUNNEL_STYLE.items():
        sel = sig == label
        if not sel.any():
            continue
        s = points[sel]
        data.append({
            "type": "scatter", "x": _list(s["denominator"].to_numpy(float)), "y": _list(s["value"].to_numpy(float)),
            "mode": "markers", "name": FUNNEL_NAMES[label],
            "marker": {"color": colour, "symbol": symbol, "size": 10, "line": {"width": 1.5, "color": colour}},
            "customdata": [esc(n) for n in s["area_name"]],
            "hovertemplate": "<b>%{customdata}</b><br>" + esc(y_title) + ": %{y:,.1f}<br>" + esc(x_title)
                             + ": %{x:,.0f}<br>" + FUNNEL_NAMES[label] + "<extra></extra>"})
    layout = _base_layout(esc(title), footer, height=580, bottom=150)
    layout["xaxis"].update({"title": {"text": esc(x_title)}})
    layout["yaxis"].update({"title": {"text": esc(y_title)}, "rangemode": "tozero"})
    _legend_gap(layout, 78)
    return {"data": data, "layout": layout}


def _zoom_for(bounds: tuple[float, float, float, float], width_px: int = 640, height_px: int = 480) -> tuple[dict, float]:
    w, s, e, n = bounds
    centre = {"lon": (w + e) / 2, "lat": (s + n) / 2}
    lon_span = max(e - w, 1e-4)
    # Web-Mercator as MapLibre draws it: 512 px span 360 degrees at zoom 0
    lat_span_merc = max(abs(math.log(math.tan(math.pi / 4 + math.radians(n) / 2)) -
                            math.log(math.tan(math.pi / 4 + math.radians(s) / 2))), 1e-6)
    z_lon = math.log2(width_px * 360 / (512 * lon_span))
    z_lat = math.log2(height_px * 2 * math.pi / (512 * lat_span_merc))
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
    bounds: tuple[float, float, float, float] | None = None,
) -> Figure:
    """Choropleth on MapLibre with no tiles (``white-bg``): draws offline.

    ``df``: ``area_code``, ``area_name``, ``value``, ``lower``, ``upper``,
    ``count``, ``status`` for the areas of one level in one period.
    ``features``: area_code -> GeoJSON feature (every area of the level in the
    reference pack). Areas of the pack not in ``df`` are drawn as "not
    published"; suppressed areas in grey; areas with a count but no rate
    (no population denominator) in light grey. ``bounds`` (west, south,
    east, north) to frame; default: the published areas.
    """
    data: list[dict] = []
    all_codes = df["area_code"].to_numpy(dtype=object)
    keep = np.fromiter((c in features for c in all_codes), dtype=bool, count=len(all_codes))
    d = df[keep]
    codes_arr = all_codes[keep]
    names_arr = d["area_name"].to_numpy(dtype=object)
    has_value = d["value"].notna().to_numpy()
    status = d["status"].to_numpy(dtype=object)
    is_supp = status == "suppressed"
    valued = d[has_value]
    norate_mask = ~has_value & ~is_supp
    published = set(codes_arr.tolist())
    missing = [c for c in features if c not in published]
    def fc(codes) -> dict:
        return {"type": "FeatureCollection", "features": [features[c] for c in codes]}

    def flat(name: str, codes: list[str], colour: str, line_colour: str, hover: list[str]) -> None:
        if not codes:
            return
        data.append({
            "type": "choroplethmap", "geojson": fc(codes), "locations": codes, "z": [1] * len(codes),
            "featureidkey": "properties.area_code", "colorscale": [[0, colour], [1, colour]], "showscale": False,
            "showlegend": True, "name": name, "marker": {"line": {"color": line_colour, "width": 0.6},
                                                         "opacity": 0.95},
            "customdata": hover, "hovertemplate": "%{customdata}<extra></extra>"})

    flat("Not published for this area (outside the source's coverage)", missing, NOT_PUBLISHED_COLOUR, "#9A9A9A",
         [f"<b>{n}</b><br>not published" for n in _escs(features[c]["properties"]["area_name"] for c in missing)])
    if len(valued):
        codes = codes_arr[has_value].tolist()
        counts = valued["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan).tolist()
        custom = [list(t) for t in zip(_escs(names_arr[has_value]), _fmts(valued["lower"]), _fmts(valued["upper"]),
                                       ["suppressed" if c != c else f"{int(c):,}" for c in counts])]
        data.append({
            "type": "choroplethmap", "geojson": fc(codes), "locations": codes,
            "z": _list(valued["value"].to_numpy(float)), "featureidkey": "properties.area_code",
            "colorscale": "Viridis", "name": esc(value_title),
            "marker": {"line": {"color": "#3A3A3A", "width": 0.5}, "opacity": 0.95},
            "colorbar": {"title": {"text": esc(value_title), "side": "right"}, "thickness": 14, "len": 0.75},
            "customdata": custom, "showlegend": False,
            "hovertemplate": "<b>%{customdata[0]}</b><br>" + esc(value_title) + ": %{z:,.1f}<br>95% CI "
                             "%{customdata[1]} to %{customdata[2]}<br>count (rounded): %{customdata[3]}"
                             "<extra></extra>"})
    flat(suppressed_label, codes_arr[is_supp].tolist(), SUPPRESSED_COLOUR, "#3A3A3A",
         [f"<b>{n}</b><br>suppressed" for n in _escs(names_arr[is_supp])])
    nr_counts = d["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[norate_mask].tolist()
    flat("Count published, no population denominator (no rate)", codes_arr[norate_mask].tolist(), NO_RATE_COLOUR,
         "#FFFFFF", [f"<b>{n}</b><br>count (rounded): {'-' if c != c else f'{int(c):,}'}; no rate"
                     for n, c in zip(_escs(names_arr[norate_mask]), nr_counts)])
    if bounds is None:
        from .geo import bounds as _bounds

        focus = [c for c in (focus_codes or published) if c in features] or list(features)
        bounds = _bounds([features[c] for c in focus])
    centre, zoom = _zoom_for(bounds) if bounds else ({"lon": -2.3, "lat": 53.5}, 8.5)
    layout = _base_layout(esc(title), footer, height=680, bottom=96)
    layout.pop("xaxis")
    layout.pop("yaxis")
    layout.update({
        "map": {"style": "white-bg", "center": centre, "zoom": zoom},
        "margin": {**layout["margin"], "l": 0, "r": 0},
        "legend": {"orientation": "h", "y": -0.02, "yanchor": "top", "x": 0, "xanchor": "left",
                   "bgcolor": "rgba(255,255,255,0.9)"},
    })
    layout["annotations"].append({
        "text": esc(attribution), "xref": "paper", "yref": "paper", "name": "attribution", "x": 1, "y": 0,
        "xanchor": "right", "yanchor": "bottom", "showarrow": False, "bgcolor": "rgba(255,255,255,0.85)",
        "font": {"size": 12, "color": "#1F1F1F"}, "align": "right"})
    return {"data": data, "layout": layout}


def births_figure(
    df: pd.DataFrame,
    *,
    title: str,
    footer: str = "",
    extract_date: pd.Timestamp | None = None,
    y_title: str = "Expected births (rounded)",
) -> Figure:
    """Expected births by area and due period as grouped bars.

    ``df``: ``area_name``, ``period_start``, ``period``, ``count``,
    ``provisional``, ``status``. Provisional bars are hatched; suppressed
    values are crosses on the axis; the extract date is marked (bars after it
    are looking forward).
    """
    data: list[dict] = []
    names = list(dict.fromkeys(df["area_name"]))
    for i, name in enumerate(names):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        d = df[df["area_name"] == name].sort_values("period_start")
        prov = d["provisional"].to_numpy(bool)
        x = np.asarray(_dates(d["period_start"]), dtype=object)
        label = esc(name)
        data.append({
            "type": "bar", "x": list(x), "y": _list(d["count"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)),
            "name": label, "legendgroup": label,
            "marker": {"color": colour, "line": {"color": colour, "width": 1},
                       "pattern": {"shape": ["/" if p else "" for p in prov], "fgcolor": "#FFFFFF", "solidity": 0.35}},
            "customdata": [[esc(p), " (provisional)" if pv else ""] for p, pv in zip(d["period"], prov)],
            "hovertemplate": f"<b>{label}</b><br>%{{customdata[0]}}%{{customdata[1]}}<br>"
                             f"{esc(y_title)}: %{{y:,}}<extra></extra>"})
        supp = d["status"].to_numpy() == "suppressed"
        if supp.any():
            data.append({
                "type": "scatter", "x": list(x[supp]), "y": [0] * int(supp.sum()), "mode": "markers",
                "showlegend": False, "legendgroup": label, "name": f"{label} suppressed", "cliponaxis": False,
                "marker": {"symbol": "x-thin", "size": 11, "line": {"width": 2, "color": colour}},
                "customdata": [esc(p) for p in d["period"].to_numpy()[supp]],
                "hovertemplate": f"<b>{label}</b><br>%{{customdata}}: suppressed<extra></extra>"})
    if (df["status"] == "suppressed").any():
        data.append(_legend_only("Suppressed (crosses on the axis)", "x-thin"))
    if df["provisional"].any():
        data.append({"type": "bar", "x": [None], "y": [None], "name": "Provisional (hatched)",
                     "marker": {"color": SUPPRESSED_COLOUR,
                                "pattern": {"shape": "/", "fgcolor": "#FFFFFF", "solidity": 0.35}}})
    layout = _base_layout(esc(title), footer)
    layout.update({"barmode": "group", "bargap": 0.15})
    layout["yaxis"].update({"title": {"text": esc(y_title)}, "rangemode": "tozero"})
    layout["xaxis"].update({"type": "date"})
    if extract_date is not None:
        x = pd.Timestamp(extract_date).strftime("%Y-%m-%d")
        layout["shapes"].append({"type": "line", "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1,
                                 "line": {"color": "#1F1F1F", "width": 2, "dash": "dot"}})
        layout["annotations"].append({"x": x, "yref": "paper", "y": 1.0, "showarrow": False, "xanchor": "left",
                                      "yanchor": "bottom", "font": {"size": 12},
                                      "text": f"extract date {x}: looking forward \u2192"})
    return {"data": data, "layout": layout}
