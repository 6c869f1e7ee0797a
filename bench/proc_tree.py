"""Measures summed over a process and its children (the benchmarks' memory and CPU figures:
the pipeline, the disclosure engine and the dashboard server all work in worker processes)."""

from __future__ import annotations

import psutil


def tree_sum(pid: int, measure) -> float:
    """``measure(process)`` summed over the process ``pid`` and its children, recursively
    (processes that end meanwhile count as 0; 0 if ``pid`` itself has ended)."""
    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for q in procs:
        try:
            total += measure(q)
        except psutil.NoSuchProcess:
            pass
    return total


def pss_bytes(process: psutil.Process) -> int:
    """A process's proportional set size: its private pages plus its share of the pages it
    shares, so that summing over processes counts a shared page once. Its RSS where the
    kernel gives no ``smaps_rollup``."""
    try:
        with open(f"/proc/{process.pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        if not process.is_running():
            raise psutil.NoSuchProcess(process.pid) from None
    except OSError:
        pass
    return process.memory_info().rss
