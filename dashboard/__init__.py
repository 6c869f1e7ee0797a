"""The outcomes dashboard (Streamlit): reads the publication only, read-only.

Layout: ``app.py`` (navigation and the shared frame), ``pages/`` (one thin
file per page), ``queries.py`` (read-only, parameterised, cached DuckDB
reads), ``indicators.py`` (figures derived from published counts with
``pipelines.stats``), ``charts.py`` (DataFrame -> plotly figure, pure),
``frame.py`` (release banner, legends, chart + table + CSV), ``geo.py``
(boundaries from the reference pack), ``controls.py`` (shared widgets).
"""
