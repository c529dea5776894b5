"""Run benchmarks: ``python -m bench ingest --rows 10000000`` (or ``all``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import (
    clv,
    dogs,
    experiments,
    features,
    ingest,
    lists,
    load,
    model,
    scale,
    sources,
    uplift,
)

SUITES = {
    "ingest": ingest.run,
    "features": features.run,
    "model": model.run,
    "clv": clv.run,
    "uplift": uplift.run,
    "dogs": dogs.run,
    "lists": lists.run,
    "train-under-load": load.run,
    "scale": scale.run,
    "sources": sources.run,
    "experiments": experiments.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", choices=[*SUITES, "all"])
    parser.add_argument("--rows", type=int, action="append", help="Rows (repeatable).")
    parser.add_argument(
        "--customers", type=int, action="append", help="scale: customers (repeatable)."
    )
    parser.add_argument(
        "--previous", type=Path, help="scale, features: an older crmkit source tree."
    )
    parser.add_argument(
        "--previous-timeout", type=float, default=1800.0, help="scale: seconds, at most."
    )
    parser.add_argument("--unsampled", action="store_true", help="scale: also every row.")
    parser.add_argument("--dask", action="store_true", help="scale: local vs Dask features.")
    parser.add_argument(
        "--repeat", type=int, default=1, help="Interleaved runs per contender; median reported."
    )
    args = parser.parse_args()
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    for name in suites:
        if name in ("model", "clv", "dogs"):
            SUITES[name](0)
            continue
        if name == "scale":
            scale.run(
                args.customers or ([] if args.dask else [250_000, 1_000_000]),
                args.previous,
                args.previous_timeout,
                args.unsampled,
                args.dask,
                args.repeat,
            )
            continue
        if name in ("uplift", "dogs", "lists", "train-under-load", "experiments"):  # no row counts
            SUITES[name](0, args.repeat)
            continue
        for rows in args.rows or [1_000_000, 10_000_000]:
            if name == "features":
                features.run(rows, args.repeat, args.previous)
            else:
                SUITES[name](rows, args.repeat)


if __name__ == "__main__":
    main()
