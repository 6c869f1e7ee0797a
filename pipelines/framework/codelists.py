"""Versioned code lists (e.g. SNOMED CT concepts defining "alcohol-related").

Format: lines starting with ``#`` are a header of ``key: value`` lines
(name, version, source, caveats), then a CSV with columns
``code,term,category``. The generator and the pipeline read the same file,
and the catalogue cites its name and version.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CodeList:
    path: Path
    header: dict[str, str]
    rows: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.header.get("name", self.path.stem)

    @property
    def version(self) -> str:
        return self.header.get("version", "unversioned")

    def codes(self, category: str | None = None) -> list[str]:
        return [c for c, _t, cat in self.rows if category is None or cat == category]

    def sql_in(self, expr: str, category: str | None = None) -> str:
        codes = self.codes(category)
        if not codes:
            return "FALSE"
        literal = ", ".join("'" + c.replace("'", "''") + "'" for c in codes)
        return f"(coalesce({expr}, '') IN ({literal}))"

    def citation(self) -> str:
        return f"{self.name} version {self.version} ({self.header.get('source', 'source not stated')})"


def load_code_list(path: Path) -> CodeList:
    text = Path(path).read_text(encoding="utf-8")
    header: dict[str, str] = {}
    body = []
    for line in text.splitlines():
        if line.startswith("#"):
            content = line[1:].strip()
            if ":" in content:
                key, value = content.split(":", 1)
                key = key.strip().lower()
                header[key] = (header[key] + " " + value.strip()) if key in header else value.strip()
        elif line.strip():
            body.append(line)
    reader = csv.DictReader(io.StringIO("\n".join(body)))
    if reader.fieldnames is None or not {"code", "term", "category"} <= set(reader.fieldnames):
        raise ValueError(f"code list {path} needs columns code,term,category")
    rows = tuple((r["code"].strip(), r["term"].strip(), r["category"].strip()) for r in reader)
    return CodeList(Path(path), header, rows)
