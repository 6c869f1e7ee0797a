"""Command line: ``python -m pipelines.samples OUT_DIR [options]``."""

from __future__ import annotations

import argparse
import sys
import time

from . import DATASETS, ReferenceDataMissing, generate_samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.samples", description="Write synthetic partner extracts.")
    parser.add_argument("out_dir")
    parser.add_argument("--rows-per-year", type=int, default=100_000, help="A&E attendances per year")
    parser.add_argument("--bookings-per-year", type=int, default=3000)
    parser.add_argument("--incidents-per-year", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=20240331)
    parser.add_argument("--reference-dir", default=None, help="reference pack (default: $OUTCOMES_REFERENCE)")
    parser.add_argument("--only", action="append", choices=DATASETS, help="write only this dataset (repeatable)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        paths = generate_samples(
            args.out_dir,
            rows_per_year=args.rows_per_year,
            bookings_per_year=args.bookings_per_year,
            incidents_per_year=args.incidents_per_year,
            seed=args.seed,
            reference_dir=args.reference_dir,
            datasets=args.only,
            progress=args.progress,
        )
    except ReferenceDataMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
