"""``skuaudit serve`` as a process: it starts the app, and a stop signal stops the app too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(os.name != "posix", reason="stop signals are POSIX")
def test_sigterm_stops_the_server_and_frees_the_port(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "SKUAUDIT_DB_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "SKUAUDIT_MEDIA_DIR": str(tmp_path / "media"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "skuaudit", "serve", "--port", str(port), "--address", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _port_open(port):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the app did not start listening"
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30) as r:
            assert r.read() == b"ok"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _port_open(port), "the app kept listening after skuaudit serve was stopped"
        assert "seeded demo data" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
