"""Debian's Chromium, run headless by the end-to-end tests, the export benchmark and the README
screenshots (never a downloaded browser)."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"

# No network side traffic (updates, sync, QUIC), no GPU, no sandbox (containers, CI).
HEADLESS_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
