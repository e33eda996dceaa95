"""Many processes saving audits into one SQLite file; a process killed mid-save leaves no partial audit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

WORKER = Path(__file__).with_name("_save_worker.py")
PRODUCTS, GAPS = 30, 2


def _setup(url: str) -> tuple[int, str]:
    with session_scope(url) as s:
        store = m.Store(name="Concurrent store")
        brands = [m.Brand(name=f"Brand {i}") for i in range(5)]
        s.add_all([store, *brands])
        s.flush()
        s.add(m.PlanogramTarget(store_id=store.id, brand_id=brands[0].id, expected_facings=3))
        return store.id, ",".join(str(b.id) for b in brands)


def _assert_every_audit_whole(url: str) -> int:
    with session_scope(url) as s:
        audits = s.scalar(sa.select(sa.func.count()).select_from(m.Audit))
        per_audit = s.execute(
            sa.select(m.Detection.audit_id, sa.func.count()).group_by(m.Detection.audit_id)
        ).all()
        facings = s.execute(
            sa.select(m.BrandMetric.audit_id, sa.func.sum(m.BrandMetric.facings)).group_by(
                m.BrandMetric.audit_id
            )
        ).all()
        images = s.scalar(sa.select(sa.func.count()).select_from(m.AuditImage))
        counts = s.execute(sa.select(m.Audit.product_count, m.Audit.gap_count)).all()
    assert len(per_audit) == audits and all(n == PRODUCTS + GAPS for _, n in per_audit)
    assert len(facings) == audits and all(f == PRODUCTS for _, f in facings)
    assert images == audits
    assert set(counts) <= {(PRODUCTS, GAPS)}
    return audits


def test_20_processes_save_100_audits_each(db_url):
    store_id, brands = _setup(db_url)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), db_url, str(store_id), brands, "100"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(e[-1500:] for e in errors if e)
    assert _assert_every_audit_whole(db_url) == 2000


def test_killed_process_leaves_no_partial_audit(db_url):
    store_id, brands = _setup(db_url)
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), db_url, str(store_id), brands, "0", "--forever"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "saving"
        time.sleep(1.5)  # many saves under way; the kill lands at an arbitrary point in one
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert _assert_every_audit_whole(db_url) >= 1
