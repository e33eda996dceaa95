"""``skuaudit serve``: migrate, seed demo data on first start, run the Streamlit app."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from skuaudit.config import REPO_ROOT


def cli_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skuaudit serve", description="Start the web app.")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--no-demo", action="store_true", help="do not seed demo data")
    args = parser.parse_args(argv)

    from skuaudit.demo import seed_demo
    from skuaudit.storage.db import DatabaseError, upgrade_database

    try:
        upgrade_database()
        if not args.no_demo:
            print(seed_demo().summary())
    except DatabaseError as exc:
        print(f"skuaudit serve: {exc}", file=sys.stderr)
        return 2
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO_ROOT / "app.py"),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
    ]
    if os.name != "posix":
        return subprocess.call(cmd, env=os.environ.copy())
    # Become Streamlit (same process id): a stop signal sent to `skuaudit serve` (kill, systemd,
    # Ctrl-C) then reaches the server itself instead of leaving it running on the port.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)
    return 0  # not reached
