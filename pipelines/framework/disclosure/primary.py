"""Primary disclosure rules as pure, vectorised functions.

``publish_values`` turns true counts into what may be shown (before any
secondary suppression); ``published_range`` says what an attacker learns
from a published value, which is what the audit and the secondary
suppression engine reason about.
"""

from __future__ import annotations

import numpy as np

from .policy import Policy


def primary_mask(counts: np.ndarray, policy: Policy) -> np.ndarray:
    """True where a count must be suppressed on its own (too small)."""
    counts = np.asarray(counts, dtype=np.int64)
    if not policy.suppress_small:
        return np.zeros(counts.shape, dtype=bool)
    lowest = 1 if policy.zeros_shown else 0
    return (counts >= lowest) & (counts <= policy.threshold)


def round_counts(counts: np.ndarray, policy: Policy) -> np.ndarray:
    """Round every count by the policy's method (suppression is separate).

    ``nearest``: to the nearest multiple of the base, halves up (8 -> 10 with
    base 5). ``midpoint``: OpenSAFELY's midpoint rounding: 0 -> 0, otherwise
    ceil(n / base) * base - floor(base / 2) (1..6 -> 3, 7..12 -> 9 for base 6).
    Rounding is applied to each cell from its own true value, totals included.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if policy.rounding == "none":
        return counts.copy()
    base = policy.rounding_base
    if policy.rounding == "nearest":
        return ((counts + base // 2) // base) * base if base % 2 else _round_half_up(counts, base)
    # midpoint
    out = -(-counts // base) * base - base // 2
    return np.where(counts == 0, 0, out)


def _round_half_up(counts: np.ndarray, base: int) -> np.ndarray:
    return ((2 * counts + base) // (2 * base)) * base


def published_range(values: np.ndarray, suppressed: np.ndarray, policy: Policy,
                    upper_if_suppressed: np.ndarray | float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """The whole-number range [lo, hi] each published cell stands for.

    A rounded value v stands for every count that rounds to v; a suppressed
    cell is at least ``policy.suppressed_minimum`` (and, if primary
    suppression is what hid it, at most the threshold is NOT assumed: a cell
    may be suppressed as a complement, so the attacker only knows the floor).
    """
    values = np.asarray(values, dtype=float)
    suppressed = np.asarray(suppressed, dtype=bool)
    if policy.rounding == "none":
        lo, hi = values.copy(), values.copy()
    elif policy.rounding == "nearest":
        base = policy.rounding_base
        down = (base - 1) // 2 if base % 2 else base // 2
        up = base // 2 if base % 2 else base // 2 - 1
        lo = np.maximum(values - down, 0)
        hi = values + up
        if policy.suppress_small:
            # counts up to the threshold never reach rounding: they are
            # suppressed (or, when zeros are shown, 0 is published exactly)
            lo = np.where(values > 0, np.maximum(lo, policy.threshold + 1), lo)
            if policy.zeros_shown:
                hi = np.where(values == 0, 0, hi)
    else:  # midpoint
        base = policy.rounding_base
        half = base // 2
        lo = np.where(values == 0, 0, values - half + 1)
        hi = np.where(values == 0, 0, values + (base - half))
    lo = np.where(suppressed, float(policy.suppressed_minimum), lo)
    hi = np.where(suppressed, upper_if_suppressed, hi)
    return lo, hi


