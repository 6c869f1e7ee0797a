"""CSV downloads that are safe to open in a spreadsheet.

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, in some programs, a tab or carriage return) as a formula. Text in the
dashboard's tables comes partly from the publication (area names, titles,
descriptions, notes, the reasons rows were rejected), so a download could
carry ``=HYPERLINK(...)`` or ``=cmd|' /C calc'!A0`` into someone's Excel.
Following OWASP's guidance on CSV injection, every such text cell, and every
such column name, gets a leading ``'``, which the spreadsheet shows as text
and does not evaluate.

Numbers stay numbers: numeric and date columns are written as they are, and
a text cell that is just a number (``-3.2``, ``+5``, ``1e-3``; the tables
format some figures as text) is left alone, since a spreadsheet reads it as
that number and no formula can hide in it.
"""

from __future__ import annotations

import re

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value):
    """``value`` made safe for a spreadsheet: text that would start a formula
    gets a leading ``'``; anything else is returned unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose text cells and column names cannot start a
    formula. Numeric, boolean and date columns are not touched."""
    out = table.copy()
    for col in out.columns:
        s = out[col]
        if (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)
                or pd.api.types.is_datetime64_any_dtype(s) or isinstance(s.dtype, pd.PeriodDtype)):
            continue
        if isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype(object)
        out[col] = s.map(safe_cell, na_action="ignore")
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def csv_bytes(table: pd.DataFrame) -> bytes:
    """The CSV (UTF-8, no index) of ``table`` as every dashboard download
    writes it: spreadsheet-safe, with CRLF line endings (RFC 4180, as Excel
    writes them), so that a field holding a carriage return is quoted."""
    return spreadsheet_safe(table).to_csv(index=False, lineterminator="\r\n").encode("utf-8")
