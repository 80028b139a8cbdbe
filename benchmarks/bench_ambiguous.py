"""Target of the ambiguity job, measured: the whole job on the official test set given a trained
selective run, under 5 minutes on this machine; prints every stage's time from the manifest.

    python benchmarks/bench_ambiguous.py --run runs/sel-seed0 [--repeat 2] [--all]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from notsure.jobs.ambiguous.pipeline import AmbiguousConfig
from notsure.jobs.ambiguous.run import run_ambiguous

TARGET_S = 300.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True, help="folder of a finished `notsure selective` run")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--all", action="store_true", help="analyse every image, not only t10k")
    args = ap.parse_args()
    totals = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = run_ambiguous(AmbiguousConfig(run=args.run, scope="all" if args.all else "test",
                                                out=str(Path(tmp) / "amb"), quiet=True))
            timings = json.loads((out / "manifest.json").read_text())["timings_s"]
            summary = json.loads((out / "summary.json").read_text())
        totals.append(timings["total"] + timings.get("load", 0.0))
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if k != "total")
        print(f"pass {i + 1}: {summary['n']:,} images analysed, {summary['n_scored']:,} scored; "
              f"{stages}")
    best = min(totals)
    print(f"whole job (load + stages): best {best:.1f} s, median {statistics.median(totals):.1f} s"
          f"; target <= {TARGET_S:.0f} s: {'met' if best <= TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main()
