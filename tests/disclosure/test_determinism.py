"""The engine's choice of complements is deterministic for the same input (issue:
"deterministic for the same input"), whatever the machine does with it.

The same benchmark-shaped release (``bench/disclosure_scale.py``) is protected in two fresh
Python processes that differ in everything that should not matter: the number of worker
processes (``OUTCOMES_DISCLOSURE_WORKERS`` 1 and 2, so components and exact-stage shares
are solved in this process or in forked workers: ``audit.map_components`` and
``lp.protect_ranges`` promise the same result either way) and the string-hash seed
(``PYTHONHASHSEED``, which changes the order of any set or dict of strings). Every
suppression mask must be identical. Two presets: nhs-digital (components of about 3,500
variables, large enough for worker processes) and suppress-under-10 (where leaks stay open
long enough for the moves of ``moves.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
import numpy as np
from disclosure_scale import make_release
from pipelines.framework.disclosure.policy import load_policy
from pipelines.framework.disclosure.primary import primary_mask
from pipelines.framework.disclosure.secondary import secondary_suppress

policy = load_policy({policy!r})
tables, meta, am = make_release(*{shape!r}, seed=3)
primary = {{n: primary_mask(t["count"].to_numpy(), policy) for n, t in tables.items()}}
mask = secondary_suppress(tables, meta, am, policy, primary)
np.savez({out!r}, **{{n: mask[n] for n in sorted(mask)}})
"""


def _protect(tmp_path: Path, policy: str, shape: tuple[int, int, int], workers: int, hash_seed: int) -> dict:
    out = tmp_path / f"{policy}-{workers}-{hash_seed}.npz"
    env = dict(os.environ, OUTCOMES_DISCLOSURE_WORKERS=str(workers), PYTHONHASHSEED=str(hash_seed))
    env.pop("OUTCOMES_DISCLOSURE_DEBUG", None)
    script = SCRIPT.format(bench=str(ROOT / "bench"), policy=policy, shape=shape, out=str(out))
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=300)
    with np.load(out) as z:
        return {n: z[n] for n in z.files}


@pytest.mark.slow
@pytest.mark.parametrize("policy, shape", [("nhs-digital", (4, 6, 6)), ("suppress-under-10", (3, 6, 5))])
def test_same_complements_with_or_without_workers(tmp_path, policy, shape):
    one = _protect(tmp_path, policy, shape, workers=1, hash_seed=1)
    two = _protect(tmp_path, policy, shape, workers=2, hash_seed=2)
    assert one.keys() == two.keys()
    differ = {n: int((one[n] != two[n]).sum()) for n in one if (one[n] != two[n]).any()}
    assert not differ, f"cells suppressed differently in the two runs, per table: {differ}"
    primary_and_secondary = sum(int(m.sum()) for m in one.values())
    assert primary_and_secondary > 0
