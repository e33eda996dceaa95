"""Live-path throughput and latency at 640x480, against a serial baseline measured in the same run.

- baseline: per camera frame, analyse (detector single pass + brand recognition + rows) and draw,
  serially: the video shown back runs at the analysis rate.
- live: ``LiveProcessor`` fed by a simulated camera at ``--camera-fps``: the returned video keeps the
  camera rate while the worker thread analyses the newest frame.

Prints processed fps, returned-video fps and latency (frame arrival to boxes ready; the overlay
shows them on the next returned frame) for both, and the ratios; then the same live path in the
page's "Dense shelf" mode (the detector in tiles; the page's default), and the facings each mode
counts on packed 640x480 shelves against their true number. Example::

    nice .venv/bin/python bench/bench_live.py --seconds 15
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import streamlit_webrtc  # noqa: F401, I001 - before TensorFlow (STACK.md: the other order segfaults)

from skuaudit.datasets.synth import render_shelf
from skuaudit.demo import seed_demo
from skuaudit.detections import PRODUCT
from skuaudit.live import LivePipeline, draw_live_overlay


def camera_frames(
    n: int, width: int = 640, height: int = 480, pan_px: int = 64
) -> list[np.ndarray]:
    """A slow pan across a generated shelf, like a phone held in front of it."""
    shelf = render_shelf(11, width + pan_px, height, n_rows=3, difficulty=0.5)
    offsets = np.linspace(0, pan_px, n).round().astype(int)
    return [np.ascontiguousarray(shelf.image_bgr[:, x : x + width]) for x in offsets]


def bench_serial(
    pipeline: LivePipeline, frames: list[np.ndarray], seconds: float, camera_fps: float
) -> dict:
    """Analyse and draw each camera frame before returning it; frames that arrive meanwhile are lost."""
    interval = 1.0 / camera_fps
    latencies, shown, start = [], 0, time.perf_counter()
    next_at = start
    while time.perf_counter() - start < seconds:
        frame = frames[shown % len(frames)]
        t0 = time.perf_counter()
        detections = pipeline.analyse(frame)
        draw_live_overlay(frame.copy(), detections, pipeline.brand_colours, ["serial"])
        latencies.append((time.perf_counter() - t0) * 1000)
        shown += 1
        next_at = max(next_at + interval, time.perf_counter())
        time.sleep(max(0.0, next_at - time.perf_counter()))
    elapsed = time.perf_counter() - start
    return {
        "processed_fps": shown / elapsed,
        "video_fps": shown / elapsed,
        "latency_ms": statistics.median(latencies),
    }


def bench_live(
    pipeline: LivePipeline,
    frames: list[np.ndarray],
    seconds: float,
    camera_fps: float,
    dense: bool = False,
) -> dict:
    processor = pipeline.new_processor(dense=dense)
    processor.process(frames[0])
    processor.wait_processed(1, timeout_s=60)  # warm-up: first inference traces the graphs
    processor.reset()
    interval = 1.0 / camera_fps
    latencies, returned, last_processed = [], 0, 0
    start = time.perf_counter()
    next_at = start
    while time.perf_counter() - start < seconds:
        processor.process(frames[returned % len(frames)])
        returned += 1
        state = processor.snapshot()
        if state.processed_frames > last_processed:
            latencies.append(state.last_latency_ms)
            last_processed = state.processed_frames
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    elapsed = time.perf_counter() - start
    state = processor.snapshot()
    processor.close()
    return {
        "processed_fps": state.processed_frames / elapsed,
        "video_fps": returned / elapsed,
        "latency_ms": statistics.median(latencies) if latencies else float("nan"),
        "dropped": state.dropped_frames,
        "received": state.received_frames,
    }


def count_packed_shelves(pipeline: LivePipeline, n: int) -> dict[str, float]:
    """Mean facings per frame on ``n`` packed 640x480 shelves: truth, one pass, dense mode."""
    truth, one_pass, dense = [], [], []
    for i in range(n):
        shelf = render_shelf(seed=600_000 + i, width=640, height=480)
        truth.append(int(np.count_nonzero(shelf.to_detections().class_id == PRODUCT)))
        for mode, out in ((False, one_pass), (True, dense)):
            detections = pipeline.analyse(shelf.image_bgr, dense=mode)
            out.append(int(np.count_nonzero(detections.class_id == PRODUCT)))

    def error(counts: list[int]) -> float:
        return 100 * float(np.mean([abs(c - t) / t for c, t in zip(counts, truth, strict=True)]))

    return {
        "truth": float(np.mean(truth)),
        "one_pass": float(np.mean(one_pass)),
        "dense": float(np.mean(dense)),
        "one_pass_error": error(one_pass),
        "dense_error": error(dense),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, help="detector folder (default: the active model)"
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--camera-fps", type=float, default=30.0)
    parser.add_argument("--shelves", type=int, default=20, help="packed shelves counted")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        seed_demo(url)
        pipeline = LivePipeline.load(url, args.model_dir)
        frames = camera_frames(90)
        pipeline.analyse(frames[0])  # warm-up outside both timings
        serial = bench_serial(pipeline, frames, args.seconds, args.camera_fps)
        live = bench_live(pipeline, frames, args.seconds, args.camera_fps)
        pipeline.analyse(frames[0], dense=True)
        dense = bench_live(pipeline, frames, args.seconds, args.camera_fps, dense=True)
        counts = count_packed_shelves(pipeline, args.shelves)

    print(
        f"model {pipeline.model_name}, 640x480 frames, camera {args.camera_fps:.0f} fps, "
        f"{args.seconds:.0f} s each"
    )
    print(f"{'path':<8} {'processed fps':>14} {'video fps':>10} {'latency ms (median)':>20}")
    for name, r in (("serial", serial), ("live", live), ("dense", dense)):
        print(
            f"{name:<8} {r['processed_fps']:>14.1f} {r['video_fps']:>10.1f} {r['latency_ms']:>20.0f}"
        )
    print(
        f"ratios live/serial: processed fps x{live['processed_fps'] / serial['processed_fps']:.2f}, "
        f"video fps x{live['video_fps'] / serial['video_fps']:.2f}, "
        f"latency x{live['latency_ms'] / serial['latency_ms']:.2f}; "
        f"dropped {live['dropped']} of {live['received']} camera frames"
    )
    print(
        f"dense/live: processed fps x{dense['processed_fps'] / live['processed_fps']:.2f}, "
        f"latency x{dense['latency_ms'] / live['latency_ms']:.2f}"
    )
    print(
        f"\nfacings per frame on {args.shelves} packed 640x480 shelves: truth {counts['truth']:.1f}, "
        f"one pass {counts['one_pass']:.1f} (count error {counts['one_pass_error']:.1f} %), "
        f"dense {counts['dense']:.1f} ({counts['dense_error']:.1f} %)"
    )


if __name__ == "__main__":
    main()
