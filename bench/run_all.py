"""Run every benchmark once and print their figures: ``make bench``.

Each script measures our code against a plain baseline in the same run and prints the ratio.
Sizes here keep the whole run under ~10 minutes on 2 cores; ``--full`` runs the dashboard
benchmark on the full 1,000-store x 52-week database (~8M detection rows; several more minutes the
first time, while it is generated).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
MODEL = BENCH.parent / "models" / "default"


def commands(full: bool) -> list[tuple[str, list[str]]]:
    dashboards = ["--runs", "3"] + ([] if full else ["--stores", "200", "--weeks", "52"])
    return [
        ("synthetic shelves", ["bench_synth.py", "--n", "20"]),
        ("dataset readers", ["bench_readers.py", "--n", "100"]),
        ("detector", ["bench_detector.py", "--frames", "30", "--synth", "10"]),
        ("detector sizes", ["bench_detector_sizes.py", "--sizes", "0.35:64,0.5:96,0.75:96"]),
        ("live path", ["bench_live.py", "--seconds", "10"]),
        ("audit save", ["bench_save.py", "--audits", "200"]),
        ("product recognition", ["bench_recognition.py", "--repeats", "3"]),
        ("training", ["bench_train.py", "--steps", "30"]),
        ("export runtimes", ["bench_export.py", "--repeat", "10", "--model", str(MODEL)]),
        ("dashboard queries", ["bench_dashboards.py", *dashboards]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="full-size dashboard database")
    parser.add_argument("--only", nargs="*", help="run only these scripts (e.g. bench_save.py)")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    timings, failed = [], []
    for title, (script, *rest) in commands(args.full):
        if args.only and script not in args.only:
            continue
        print(f"\n=== {title} ({script}) ===", flush=True)
        start = time.perf_counter()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        code = subprocess.call([sys.executable, str(BENCH / script), *rest], env=env)
        timings.append((title, time.perf_counter() - start, code))
        if code:
            failed.append(script)
    print("\n=== wall time per benchmark ===")
    for title, seconds, code in timings:
        print(f"  {title:<20} {seconds:7.1f} s{'  FAILED' if code else ''}")
    print(f"  {'total':<20} {sum(t for _, t, _ in timings):7.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
