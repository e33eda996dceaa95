"""Product recognition time: the photo path (keypoint verification) vs the fast path vs a plain
embedding nearest neighbour, on one generated shelf, measured in one run.

A gallery of 50 generated products x 5 reference facings; a 1600x1200 generated shelf photo whose
product boxes (the first 150) are recognised through ``Recognizer.assign_products``, the code an
audit runs (keypoints verified only where the fast path is unsure, and again with every facing
verified); a 640x480 frame (its own boxes) through the live path (``fast=True``). Each figure is
the median of ``--repeats`` runs after a warm-up.

The live path again on a moving camera: ``--frames`` 640x480 frames panning ``--pan-px`` a frame
across a wider generated shelf (its true boxes, cut by the frame edge, jittered by up to 1 px
like a detector's), recognised without a cache (every facing embedded: the previous live path)
and with a ``TrackCache`` (facings still in place keep their embedding): the first (cold) frame
and the steady state (median of the later frames), the ratio, and how many facings get the same
answer both ways; with the default per-frame embedding budget (``DEFAULT_EMBED_BUDGET``) and
without one (``budget=None``), and how many frames pass until every facing is named. The 640x480
frame held still from cold with the budget, frame by frame, and the cost of a frame by the number
of facings it embeds (what the budget is derived from).

    nice -n 5 .venv/bin/python bench/bench_recognition.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import replace

import numpy as np

from skuaudit.datasets.synth import make_catalogue, reference_packs, render_shelf
from skuaudit.detections import PRODUCT, Detections
from skuaudit.images import crop_xyxy
from skuaudit.recognition import DEFAULT_EMBED_BUDGET, Gallery, Recognizer, TrackCache
from skuaudit.sku_matching import colour_histogram, colour_histograms


def _median_ms(fn, repeats: int, cpu: list | None = None) -> float:
    """Median wall-clock ms; ``cpu`` receives the median CPU ms of this process (all threads),
    a figure less moved by other jobs on the machine."""
    fn()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
    if cpu is not None:
        cpu.append(1000 * float(np.median(cpu_times)))
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--facings", type=int, default=150)
    parser.add_argument("--frames", type=int, default=30, help="moving-camera frames")
    parser.add_argument("--pan-px", type=int, default=4, help="camera move per frame")
    args = parser.parse_args()

    recognizer = Recognizer.load()
    catalogue = make_catalogue(50, seed=77)
    rng = np.random.default_rng(0)
    references = reference_packs(catalogue, 5, 60, 120, rng)
    start = time.perf_counter()
    gallery = Gallery.from_references(references, recognizer)
    describe_ms = 1000 * (time.perf_counter() - start) / len(references)

    for seed in range(100):  # the first generated shelf with enough facings
        shelf = render_shelf(seed, 1600, 1200, catalogue=catalogue)
        det = shelf.to_detections()
        if (det.class_id == PRODUCT).sum() >= args.facings:
            break
    det = det[np.flatnonzero(det.class_id == PRODUCT)[: args.facings]]
    frame = render_shelf(4, 640, 480, catalogue=catalogue)
    frame_det = frame.to_detections()

    def nearest_embedding() -> None:  # the previous recogniser: embedding nearest neighbour
        crops = [crop_xyxy(shelf.image_bgr, box) for box in det.xyxy]
        (recognizer.embed(crops) @ gallery.embeddings.T).argmax(axis=1)

    photo_cpu: list[float] = []
    photo = _median_ms(
        lambda: recognizer.assign_products(shelf.image_bgr, det, gallery), args.repeats, photo_cpu
    )
    # the same facings with every one verified (as if the fast path were never sure)
    verify_all = copy.copy(recognizer)
    verify_all.matching = replace(recognizer.matching, skip_verify_above=1.0)
    photo_all = _median_ms(
        lambda: verify_all.assign_products(shelf.image_bgr, det, gallery), args.repeats
    )
    fast = _median_ms(
        lambda: recognizer.assign_products(shelf.image_bgr, det, gallery, fast=True), args.repeats
    )
    plain = _median_ms(nearest_embedding, args.repeats)
    live_cpu: list[float] = []
    live = _median_ms(
        lambda: recognizer.assign_products(frame.image_bgr, frame_det, gallery, fast=True),
        args.repeats,
        live_cpu,
    )
    still, still_cpu = TrackCache(), []  # the camera held still: the warm-up call is cold
    live_still = _median_ms(
        lambda: recognizer.assign_products(
            frame.image_bgr, frame_det, gallery, fast=True, cache=still
        ),
        max(args.repeats, 10),
        still_cpu,
    )
    n_frame = int((frame_det.class_id == PRODUCT).sum())
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}; gallery {len(gallery)} references of 50 products")
    print(f"describing a reference (embedding, colour, keypoints): {describe_ms:.1f} ms")
    matcher = gallery.matcher(recognizer)
    crops = [crop_xyxy(shelf.image_bgr, box) for box in det.xyxy]
    fast_best = matcher.product_scores(matcher.describe(crops, fast=True), fast=True).max(axis=1)
    verified = float((fast_best < recognizer.matching.skip_verify_above).mean())
    print(
        f"photo path, {len(det)} facings (keypoints verified for {verified:.0%} of them): "
        f"{photo:.0f} ms ({photo_cpu[0]:.0f} ms of CPU)"
    )
    print(f"photo path, every facing verified: {photo_all:.0f} ms")
    print(f"fast path, same facings (embedding + colour): {fast:.0f} ms")
    print(f"plain embedding nearest neighbour, same facings: {plain:.0f} ms")
    print(
        f"live frame 640x480, {n_frame} facings, fast path: {live:.1f} ms "
        f"({live_cpu[0]:.0f} ms of CPU); the same frame again with a TrackCache (camera held "
        f"still, embeddings refreshed every 10 frames in turns): {live_still:.1f} ms "
        f"({still_cpu[0]:.0f} ms of CPU; {live / live_still:.1f}x faster)"
    )
    print(
        f"ratios: photo / fast {photo / fast:.2f}x, every facing verified / fast "
        f"{photo_all / fast:.2f}x, photo / plain {photo / plain:.2f}x, fast / plain {fast / plain:.2f}x"
    )
    frame_crops = [
        crop_xyxy(frame.image_bgr, box) for box in frame_det.xyxy[frame_det.class_id == PRODUCT]
    ]
    per_crop = _median_ms(lambda: [colour_histogram(c) for c in frame_crops], args.repeats)
    batched = _median_ms(lambda: colour_histograms(frame_crops), args.repeats)
    print(
        f"colour of the frame's {len(frame_crops)} crops: one by one {per_crop:.1f} ms, "
        f"batched {batched:.1f} ms ({per_crop / batched:.2f}x)"
    )
    bench_moving_camera(recognizer, gallery, catalogue, args.frames, args.pan_px)
    bench_budget(recognizer, gallery, frame.image_bgr, frame_det[frame_det.class_id == PRODUCT])


def moving_camera(catalogue, n: int, pan_px: int, width: int = 640, height: int = 480) -> list:
    """``(frame, detections)`` of a camera panning ``pan_px`` a frame across a generated shelf;
    boxes cut by the frame edge are kept when at least half of them is inside."""
    shelf = render_shelf(4, width + pan_px * (n - 1), height, catalogue=catalogue)
    truth = shelf.to_detections()
    truth = truth[np.flatnonzero(truth.class_id == PRODUCT)]
    rng = np.random.default_rng(1)
    frames = []
    for i in range(n):
        x = i * pan_px
        boxes = truth.xyxy - np.array([x, 0, x, 0], np.float32)
        clipped = boxes.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
        inside = (clipped[:, 2] - clipped[:, 0]) >= 0.5 * (boxes[:, 2] - boxes[:, 0])
        keep = np.flatnonzero(inside)
        jitter = rng.uniform(-1, 1, (len(keep), 4)).astype(np.float32)
        xyxy = (clipped[keep] + jitter).clip(0, [width, height, width, height])
        det = Detections(xyxy, truth.confidence[keep], truth.class_id[keep])
        frames.append((np.ascontiguousarray(shelf.image_bgr[:, x : x + width]), det))
    return frames


def bench_moving_camera(recognizer, gallery, catalogue, n: int, pan_px: int) -> None:
    frames = moving_camera(catalogue, n, pan_px)
    recognizer.assign_products(*frames[0], gallery, fast=True)  # warm-up

    def run(cache: TrackCache | None) -> tuple[list[float], list[float], list[np.ndarray], list]:
        wall, cpu, answers, embedded = [], [], [], []
        pending = []
        for image, det in frames:
            start, start_cpu = time.perf_counter(), time.process_time()
            out = recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
            wall.append(1000 * (time.perf_counter() - start))
            cpu.append(1000 * (time.process_time() - start_cpu))
            answers.append(out.data["product_id"])
            embedded.append(cache.embedded if cache is not None else len(det))
            pending.append(out.data.get("pending", np.zeros(len(det), bool)))
        return wall, cpu, answers, embedded, pending

    old_wall, old_cpu, old_answers, _, _ = run(None)
    facings = [len(det) for _, det in frames]
    steady_old = float(np.median(old_wall[1:]))
    print(
        f"moving camera, {n} frames 640x480 panning {pan_px} px a frame, "
        f"{min(facings)}-{max(facings)} facings a frame (load {os.getloadavg()[0]:.1f}):"
    )
    print(
        f"  every facing embedded (previous live path): first frame {old_wall[0]:.1f} ms, "
        f"later frames median {steady_old:.1f} ms ({np.median(old_cpu[1:]):.0f} ms of CPU)"
    )
    for budget in (None, DEFAULT_EMBED_BUDGET):
        new_wall, new_cpu, new_answers, embedded, pending = run(TrackCache(budget=budget))
        agree = np.concatenate([a == b for a, b in zip(old_answers, new_answers, strict=True)])
        waiting = np.concatenate(pending)
        same, same_named = float(agree.mean()), float(agree[~waiting].mean())
        complete = next((i + 1 for i, p in enumerate(pending) if not p.any()), None)
        pending = [int(p.sum()) for p in pending]
        steady_new = float(np.median(new_wall[1:]))
        label = "no budget" if budget is None else f"budget {budget}"
        print(
            f"  TrackCache, {label}: first (cold) frame {new_wall[0]:.1f} ms "
            f"({new_cpu[0]:.0f} ms of CPU, {embedded[0]} embedded, {pending[0]} pending), "
            f"later frames median {steady_new:.1f} ms ({np.median(new_cpu[1:]):.0f} ms of CPU), "
            f"max {max(new_wall[1:]):.1f} ms; facings embedded a later frame: median "
            f"{np.median(embedded[1:]):.0f}, max {max(embedded[1:])}; every facing named from "
            f"frame {complete}"
        )
        print(
            f"    ratios: cold / uncached {new_wall[0] / old_wall[0]:.2f}x, steady cached / "
            f"uncached {steady_new / steady_old:.2f}x ({steady_old / steady_new:.1f}x faster); "
            f"same answer as uncached for {same:.1%} of the facings (pending ones counted as "
            f"different), {same_named:.1%} of the named ones"
        )


def bench_budget(recognizer, gallery, image: np.ndarray, det, repeats: int = 7) -> None:
    """The 640x480 frame held still from a cold cache with the default budget (each frame's
    time, the median of ``repeats`` streams), and a frame's time by facings embedded."""
    budget = DEFAULT_EMBED_BUDGET
    n = len(det)
    frames = -(-n // budget) + 2
    times = np.zeros((repeats, frames))
    cpu = np.zeros((repeats, frames))
    pending = []
    for r in range(repeats):
        cache = TrackCache()
        for f in range(frames):
            start, start_cpu = time.perf_counter(), time.process_time()
            recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
            times[r, f] = 1000 * (time.perf_counter() - start)
            cpu[r, f] = 1000 * (time.process_time() - start_cpu)
            if r == 0:
                pending.append(cache.pending)
    uncached = _median_ms(
        lambda: recognizer.assign_products(image, det, gallery, fast=True), repeats
    )
    print(
        f"still frame 640x480, {n} facings, cold cache with budget {budget} "
        f"(load {os.getloadavg()[0]:.1f}): frame by frame "
        + ", ".join(
            f"{t:.1f} ms ({c:.0f} CPU, {p} pending)"
            for t, c, p in zip(np.median(times, 0), np.median(cpu, 0), pending, strict=True)
        )
        + f"; uncached {uncached:.1f} ms (first frame / uncached "
        f"{np.median(times[:, 0]) / uncached:.2f}x)"
    )
    # a frame's cost by the number of facings it embeds (k boxes moved aside, so embedded
    # again; the others reuse a cached embedding); the k values interleaved, round after round,
    # so that the other jobs on the machine weigh on each alike
    ks = (0, 8, 16, 24, 32, 40)
    cache = TrackCache(budget=None, refresh_frames=10**6)
    recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    state = (cache._key, cache._boxes, cache._embeddings, cache._colours, cache._ages)
    moved = {}
    for k in ks:
        xyxy = det.xyxy.copy()
        xyxy[:k, [0, 2]] += (0.6 * (xyxy[:k, 2] - xyxy[:k, 0]))[:, None]
        moved[k] = Detections(xyxy, det.confidence, det.class_id)
    wall: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(2 * repeats):
        for k in ks:
            cache._key, cache._boxes, cache._embeddings, cache._colours, cache._ages = state
            start = time.perf_counter()
            recognizer.assign_products(image, moved[k], gallery, fast=True, cache=cache)
            wall[k].append(1000 * (time.perf_counter() - start))
            assert cache.embedded == k, (cache.embedded, k)
    costs = [float(np.median(wall[k])) for k in ks]
    slope, base = np.polyfit(ks, costs, 1)
    print(
        f"  a {n}-facing frame by facings embedded (the others reused; median of "
        f"{2 * repeats}): "
        + ", ".join(f"{k}: {c:.1f} ms" for k, c in zip(ks, costs, strict=True))
        + f"; fit {base:.1f} ms + {slope:.2f} ms a facing -> at most "
        f"{int((40 - base) / slope)} facings for 40 ms (load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
