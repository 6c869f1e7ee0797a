"""Errors a user sees. Each says what is wrong, where, and what to do.

No message built here ever contains a value from an extract: only file
names, column names, row numbers and counts. Row numbers count data rows
from 1 (the first row below the header); in a CSV without line breaks
inside fields, row N is line N + 1; in a spreadsheet, row N is sheet row N + 1.
"""

from __future__ import annotations

from collections.abc import Sequence


class OutcomesError(RuntimeError):
    """Base class for errors that end a run with a clear message (exit 2)."""

    exit_code = 2


class ExtractError(OutcomesError):
    """An extract cannot be used: names the file and, where known, rows and column."""

    def __init__(self, file: str, problem: str, *, column: str | None = None,
                 rows: Sequence[int] = (), hint: str = "") -> None:
        parts = [f"{file}:"]
        if column:
            parts.append(f"column '{column}':")
        parts.append(problem)
        if rows:
            parts.append(f"(rows {format_rows(rows)})")
        message = " ".join(parts)
        if hint:
            message += f". {hint}"
        super().__init__(message)
        self.file = file
        self.column = column
        self.rows = list(rows)


class TooManyRejectsError(OutcomesError):
    """More rows were unusable than the pipeline allows."""


class PublicationLockedError(OutcomesError):
    """Another run is publishing to the same place."""

    exit_code = 3


def format_rows(rows: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(r) for r in list(rows)[:limit])
    return shown + (", ..." if len(rows) > limit else "")
