"""Named points where a test can make a run die, to prove crash safety.

``checkpoint(name)`` does nothing unless ``OUTCOMES_FAULT_POINT`` names
this point (or ``*``) in the environment; then the process kills itself
with SIGKILL, as a power cut or the OOM killer would, with no chance to
clean up. ``OUTCOMES_FAULT_POINT=list`` prints each point reached, so a test
can learn them all from one clean run.
"""

from __future__ import annotations

import os
import signal
import sys


def checkpoint(name: str) -> None:
    target = os.environ.get("OUTCOMES_FAULT_POINT")
    if not target:
        return
    if target == "list":
        print(f"fault-point: {name}", file=sys.stderr, flush=True)
        return
    if target == name:
        os.kill(os.getpid(), signal.SIGKILL)
