"""Primary disclosure rules: exact values for each preset."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.framework.disclosure.policy import PolicyError, load_policy, preset_names
from pipelines.framework.disclosure.primary import primary_mask, published_range, round_counts

COUNTS = np.array([0, 1, 2, 6, 7, 8, 9, 10, 12, 13, 17, 18, 100, 102, 103])


def test_presets_are_shipped():
    assert {"nhs-digital", "opensafely", "opensafely-midpoint6", "suppress-under-10"} <= set(preset_names())


def test_nhs_digital():
    p = load_policy("nhs-digital")
    assert p.threshold == 7 and p.suppressed_minimum == 1
    mask = primary_mask(COUNTS, p)
    assert mask.tolist() == [False, True, True, True, True] + [False] * 10
    assert round_counts(COUNTS, p).tolist() == [0, 0, 0, 5, 5, 10, 10, 10, 10, 15, 15, 20, 100, 100, 105]
    lo, hi = published_range(np.array([0, 10, 15, 100]), np.array([False] * 4), p)
    assert lo.tolist() == [0, 8, 13, 98] and hi.tolist() == [0, 12, 17, 102]


def test_opensafely_suppresses_zero_too():
    p = load_policy("opensafely")
    assert primary_mask(COUNTS, p)[:5].tolist() == [True, True, True, True, True]
    assert p.suppressed_minimum == 0


def test_midpoint6():
    p = load_policy("opensafely-midpoint6")
    assert not primary_mask(COUNTS, p).any()
    assert round_counts(COUNTS, p).tolist() == [0, 3, 3, 3, 9, 9, 9, 9, 9, 15, 15, 15, 99, 99, 105]
    lo, hi = published_range(np.array([0, 3, 9, 99]), np.array([False] * 4), p)
    assert lo.tolist() == [0, 1, 7, 97] and hi.tolist() == [0, 6, 12, 102]


def test_suppress_under_10_is_exact_otherwise():
    p = load_policy("suppress-under-10")
    mask = primary_mask(COUNTS, p)
    assert mask.tolist() == [False] + [True] * 6 + [False] * 8
    assert round_counts(COUNTS, p).tolist() == COUNTS.tolist()
    lo, hi = published_range(np.array([0, 10, 13]), np.array([False, False, True]), p)
    assert lo.tolist() == [0, 10, 1] and hi[:2].tolist() == [0, 10] and np.isinf(hi[2])


def test_custom_policy_file(tmp_path):
    f = tmp_path / "council.toml"
    f.write_text('name = "council"\ndescription = "x"\nthreshold = 4\nsuppress_small = true\nzeros_shown = true\n'
                 'rounding = "nearest"\nrounding_base = 10\nprotection_width = 7\n')
    p = load_policy(str(f))
    assert p.protection_width == 7
    assert round_counts(np.array([5, 14, 15, 25]), p).tolist() == [10, 10, 20, 30]


def test_bad_policies_are_refused(tmp_path):
    with pytest.raises(PolicyError, match="unknown policy"):
        load_policy("nope")
    f = tmp_path / "bad.toml"
    f.write_text('threshold = 5\nrounding = "sideways"\n')
    with pytest.raises(PolicyError):
        load_policy(str(f))
