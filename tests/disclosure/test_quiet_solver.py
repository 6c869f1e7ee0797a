"""The LP solver writes nothing to stdout: ``outcomes run`` prints its own progress and
summary, and highspy 1.16 prints a banner from its constructor unless kept quiet."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SOLVE = """
import numpy as np, scipy.sparse as sp
from pipelines.framework.disclosure.lp import ComponentLP
A = sp.csr_matrix(np.array([[1.0, 1.0, -1.0]]))
model = ComponentLP(A, np.zeros(1), np.zeros(1), col_hi=np.full(3, 10.0))
status, x, _ = model.first_solve()
model.use_interior_point()
model.solve(np.array([0]), np.array([1.0]), maximize=True)
print("solved", status)
"""


def test_solving_writes_nothing_but_our_own_output():
    done = subprocess.run([sys.executable, "-c", SOLVE], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout == "solved optimal\n"
    assert "HiGHS" not in done.stderr
