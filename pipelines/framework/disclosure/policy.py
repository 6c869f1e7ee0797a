"""Disclosure policies: named presets shipped as TOML, or a custom file.

A policy says which counts are too small to publish (``threshold``), whether
0 is shown, how other counts are rounded, and how wide the range an attacker
can narrow any small count to must stay (``protection_width``). The rules it
implies are pure functions in ``primary``; this module only loads and checks.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

PRESET_DIR = Path(__file__).with_name("policies")
DEFAULT_POLICY = "nhs-digital"

Rounding = Literal["nearest", "midpoint", "none"]


class PolicyError(ValueError):
    """A policy file is missing or says something the rules cannot apply."""


@dataclass(frozen=True)
class Policy:
    """A disclosure policy. See README "Disclosure policies" for plain English."""

    name: str
    description: str
    threshold: int
    suppress_small: bool
    zeros_shown: bool
    rounding: Rounding
    rounding_base: int
    protection_width: int = 5
    #: run secondary suppression and the LP audit in the gate, for a pipeline whose spec has
    #: not chosen (``PipelineSpec.secondary_suppression``; ``--secondary``/``--primary-only``
    #: decide over both). Every shipped pipeline chooses it (see README, "Disclosure control:
    #: current state").
    secondary_suppression: bool = False

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise PolicyError(f"policy {self.name}: threshold must be >= 0")
        if self.rounding not in ("nearest", "midpoint", "none"):
            raise PolicyError(f"policy {self.name}: rounding must be nearest, midpoint or none")
        if self.rounding != "none" and self.rounding_base < 2:
            raise PolicyError(f"policy {self.name}: rounding_base must be >= 2 when rounding")
        if self.protection_width < 1:
            raise PolicyError(f"policy {self.name}: protection_width must be >= 1")

    @property
    def suppressed_minimum(self) -> int:
        """The least value an attacker knows a suppressed count has."""
        return 1 if self.zeros_shown else 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Policy":
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def plain_english(self) -> str:
        return self.description


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_policy(name_or_path: str | Path | None = None) -> Policy:
    """Load a preset by name, or a custom policy from a TOML file path."""
    if name_or_path is None or name_or_path == "":
        name_or_path = DEFAULT_POLICY
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        path = candidate
        if not path.exists():
            raise PolicyError(f"policy file {path} not found")
    else:
        path = PRESET_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise PolicyError(
                f"unknown policy {name_or_path!r}: presets are {', '.join(preset_names())}, "
                "or give the path of a .toml file"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    data.setdefault("name", path.stem)
    data.setdefault("description", "custom policy")
    known = set(Policy.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise PolicyError(f"policy file {path}: unknown setting(s) {', '.join(sorted(unknown))}")
    missing = known - set(data) - {"protection_width", "secondary_suppression"}
    if missing:
        raise PolicyError(f"policy file {path}: missing setting(s) {', '.join(sorted(missing))}")
    return Policy(**data)
