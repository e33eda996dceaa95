"""The Live audit frame processor: returns each frame at once, drawn with the newest boxes, and
analyses the newest frame on its own worker thread (see ``skuaudit.live``)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from skuaudit.detections import GAP, Detections
from skuaudit.drawing import BGR, box_colours, draw_boxes
from skuaudit.errors import UserError
from skuaudit.live.counting import _count_distance, count_by_product, roll_up, smooth_counts
from skuaudit.metrics import ProductInfo

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 15

Analyser = Callable[[np.ndarray], Detections]


class AlreadySavedError(UserError):
    """The live results were saved already; a new audit needs new frames."""


def _area(shape: tuple[int, ...]) -> int:
    return int(shape[0]) * int(shape[1])


def draw_live_overlay(
    frame_bgr: np.ndarray,
    detections: Detections,
    brand_colours: Mapping[int, BGR],
    lines: Sequence[str],
) -> np.ndarray:
    """Draw boxes coloured by brand (gaps red, unknown grey) and a text panel, in place.

    Args:
        frame_bgr: ``(H, W, 3)`` uint8 frame, in the pixel coordinates of ``detections``.
        detections: boxes with optional ``data["brand_id"]``.
        brand_colours: brand id -> BGR colour.
        lines: text for the panel in the top-left corner.

    Returns:
        ``frame_bgr``.
    """
    thickness = max(1, round(frame_bgr.shape[1] / 400))
    draw_boxes(frame_bgr, detections.xyxy, box_colours(detections, brand_colours), thickness)
    if lines:
        line_h = 18
        width = 12 + 9 * max(len(line) for line in lines)
        panel = frame_bgr[4 : 8 + line_h * len(lines), 4 : 4 + width]
        panel[:] = (panel * 0.35).astype(np.uint8)
        for i, line in enumerate(lines):
            cv2.putText(
                frame_bgr,
                line,
                (10, 4 + line_h * (i + 1)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    return frame_bgr


# --------------------------------------------------------------------------- the processor


# The counts of a sample hold the gaps under this key, beside the products' (brand, product) keys.
_GAPS_KEY = ("", "")


@dataclass(frozen=True)
class _Sample:
    frame_bgr: np.ndarray
    detections: Detections
    counts: dict[tuple[str, str], int]


@dataclass(frozen=True)
class LiveState:
    """What the page shows and "Save audit" stores; a consistent copy taken under the lock.

    Attributes:
        counts: facings per brand name: the sums of ``product_counts``.
        product_counts: smoothed facings per ``(brand, product)`` name (median over the
            window's frames at the largest size it holds; see ``count_by_product``).
        gaps: smoothed number of gaps.
        processed_frames: frames the detector has finished since the processor was made.
        received_frames: frames handed to ``process``.
        dropped_frames: frames replaced in the slot before the detector could take them.
        fps: processed frames per second over the window.
        latency_ms: median over the window of the frames' time from arrival in ``process`` to
            their boxes being ready (the overlay and the page's status line show the same figure).
        last_latency_ms: the newest processed frame's own latency (benchmarks).
        frame_bgr: the frame "Save audit" stores: of the window's frames at the largest size
            seen in it, the one whose counts are closest to the smoothed ones (newest on ties);
            ``None`` before the first processed frame.
        detections: that frame's detections.
        error: the last analysis error, if the newest attempt failed.
        saved_audit_id: the audit these results were saved as (``LiveProcessor.save_once``),
            until the next reset; ``None`` when not saved.
    """

    counts: dict[str, int] = field(default_factory=dict)
    product_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    gaps: int = 0
    processed_frames: int = 0
    received_frames: int = 0
    dropped_frames: int = 0
    fps: float = 0.0
    latency_ms: float = 0.0
    last_latency_ms: float = 0.0
    frame_bgr: np.ndarray | None = None
    detections: Detections = field(default_factory=Detections.empty)
    error: str | None = None
    saved_audit_id: int | None = None

    @property
    def products(self) -> int:
        """Smoothed facings of all brands together."""
        return sum(self.counts.values())

    @property
    def frame_shape(self) -> tuple[int, int] | None:
        """``(height, width)`` of ``frame_bgr``."""
        return None if self.frame_bgr is None else self.frame_bgr.shape[:2]


class LiveProcessor:
    """Thread-safe frame processor: returns frames at once, analyses the newest on a worker thread.

    Args:
        analyse: frame -> ``Detections`` with ``data["product_id"]`` and ``data["brand_id"]``
            (runs on the worker thread).
        brand_names: brand id -> name, for counting.
        brand_colours: brand id -> BGR box colour.
        window: processed frames the counts are smoothed over.
        idle_timeout_s: the worker thread exits after this long without frames.
        products: product id -> ``ProductInfo``, for counting per product.

    Example:
        >>> proc = LiveProcessor(lambda f: Detections.empty(), {})
        >>> out = proc.process(np.zeros((48, 64, 3), np.uint8))
        >>> proc.wait_processed(1), out.shape
        (True, (48, 64, 3))
        >>> proc.close()
    """

    def __init__(
        self,
        analyse: Analyser,
        brand_names: Mapping[int, str],
        brand_colours: Mapping[int, BGR] | None = None,
        *,
        window: int = DEFAULT_WINDOW,
        idle_timeout_s: float = 10.0,
        products: Mapping[int, ProductInfo] | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self._analyse = analyse
        self._generation = 0  # bumped by reset: results of frames from before are dropped
        self._brand_names = dict(brand_names)
        self._products = dict(products or {})
        self._brand_colours = dict(brand_colours or {})
        self._idle_timeout_s = idle_timeout_s
        # One condition guards everything below: the slot, the worker handle and the results.
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, float] | None = None
        self._worker: threading.Thread | None = None
        self._closed = False
        self._history: deque[_Sample] = deque(maxlen=window)
        self._done_times: deque[float] = deque(maxlen=max(window, 2))
        self._latencies_ms: deque[float] = deque(maxlen=max(window, 1))
        self._latest = Detections.empty()
        self._latest_shape: tuple[int, int] | None = None
        self._overlay_lines: list[str] = []
        self._processed = 0
        self._received = 0
        self._dropped = 0
        self._error: str | None = None
        self._saved_audit_id: int | None = None
        # NOTE: held through a whole save (a database write), apart from the condition above so
        # frames keep flowing meanwhile; it makes two "Save audit" clicks save one audit.
        self._save_lock = threading.Lock()

    # -- callback thread

    def process(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Queue ``frame_bgr`` for analysis and return a copy drawn with the newest results.

        Never waits for the detector. Safe to call from any thread.
        """
        frame_bgr = np.ascontiguousarray(frame_bgr)
        with self._cond:
            if self._closed:
                raise RuntimeError("LiveProcessor is closed")
            # NOTE: the worker thread takes frames from this one-frame slot; a frame still lying
            # there is stale now, so it is replaced (dropped) instead of queued behind.
            if self._pending is not None:
                self._dropped += 1
            self._pending = (frame_bgr, time.monotonic())
            self._received += 1
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="skuaudit-live", daemon=True)
                self._worker.start()
            self._cond.notify()
            latest, latest_shape, lines = self._latest, self._latest_shape, self._overlay_lines
        out = frame_bgr.copy()
        if latest_shape is not None and latest_shape != out.shape[:2]:
            # The camera changed resolution (device switch, rotation): rescale the last boxes.
            scale = np.array([out.shape[1] / latest_shape[1], out.shape[0] / latest_shape[0]] * 2)
            latest = Detections(
                latest.xyxy * scale, latest.confidence, latest.class_id, latest.data
            )
        return draw_live_overlay(out, latest, self._brand_colours, lines)

    def callback(self, frame):
        """streamlit-webrtc ``video_frame_callback``: ``av.VideoFrame`` in, annotated one out."""
        import av

        # streamlit-webrtc copies pts and time_base from the input frame onto what we return.
        return av.VideoFrame.from_ndarray(
            self.process(frame.to_ndarray(format="bgr24")), format="bgr24"
        )

    # -- worker thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    if not self._cond.wait(timeout=self._idle_timeout_s) and self._pending is None:
                        # Idle: exit rather than outlive the stream; process() starts a new worker.
                        self._worker = None
                        return
                if self._closed:
                    self._worker = None
                    return
                frame, received_at = self._pending
                self._pending = None
                analyse, generation = self._analyse, self._generation
            try:
                detections = analyse(frame)
            except Exception as exc:  # the stream must survive one bad frame; the page shows it
                log.exception("live analysis failed")
                with self._cond:
                    self._error = f"{type(exc).__name__}: {exc}"
                continue
            done_at = time.monotonic()
            counts = count_by_product(detections, self._brand_names, self._products)
            gaps = int(np.count_nonzero(detections.class_id == GAP))
            with self._cond:
                if generation != self._generation:  # a frame from before the last reset
                    continue
                self._history.append(_Sample(frame, detections, {**counts, _GAPS_KEY: gaps}))
                self._done_times.append(done_at)
                self._latest, self._latest_shape = detections, frame.shape[:2]
                self._processed += 1
                self._latencies_ms.append((done_at - received_at) * 1000.0)
                self._error = None
                state = self._state_locked()
                self._overlay_lines = _overlay_text(state)

    # -- page thread

    def snapshot(self) -> LiveState:
        """Smoothed counts, counters and the representative frame, consistent with each other."""
        with self._cond:
            return self._state_locked()

    def _state_locked(self) -> LiveState:
        if not self._history:
            return LiveState(
                processed_frames=self._processed,
                received_frames=self._received,
                dropped_frames=self._dropped,
                error=self._error,
                saved_audit_id=self._saved_audit_id,
            )
        # The counts and the snapshot come from the window's frames at the best resolution it
        # has: frames the browser scaled down (a busy CPU or network) show fewer facings, and
        # their brands are named far less often, so they count only when no larger one is left.
        # What the page shows is then what "Save audit" stores.
        largest = max(_area(s.frame_bgr.shape) for s in self._history)
        samples = [s for s in self._history if _area(s.frame_bgr.shape) == largest]
        # The gaps key is smoothed too, so that the representative frame matches them as well.
        smoothed = smooth_counts([s.counts for s in samples])
        best = min(reversed(samples), key=lambda s: _count_distance(s.counts, smoothed))
        times = self._done_times
        fps = (
            (len(times) - 1) / (times[-1] - times[0])
            if len(times) > 1 and times[-1] > times[0]
            else 0.0
        )
        gaps = smoothed.pop(_GAPS_KEY, 0)
        return LiveState(
            counts=roll_up(smoothed),
            product_counts=smoothed,
            gaps=gaps,
            processed_frames=self._processed,
            received_frames=self._received,
            dropped_frames=self._dropped,
            fps=fps,
            latency_ms=float(np.median(self._latencies_ms)),
            last_latency_ms=self._latencies_ms[-1],
            frame_bgr=best.frame_bgr,
            detections=best.detections,
            error=self._error,
            saved_audit_id=self._saved_audit_id,
        )

    def wait_processed(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until at least ``count`` frames were processed (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._cond:
                if self._processed >= count:
                    return True
            time.sleep(0.002)
        return False

    def reset(self) -> None:
        """Forget results, counters and the saved mark (a new audit).

        A frame of the stream before, still in the slot or being analysed, is dropped: it
        belongs to the previous audit.
        """
        with self._cond:
            self._generation += 1
            self._pending = None
            self._history.clear()
            self._done_times.clear()
            self._latencies_ms.clear()
            self._latest, self._latest_shape, self._overlay_lines = Detections.empty(), None, []
            self._processed = self._received = self._dropped = 0
            self._error = None
            self._saved_audit_id = None

    def set_analyser(
        self,
        analyse: Analyser,
        brand_names: Mapping[int, str] | None = None,
        brand_colours: Mapping[int, BGR] | None = None,
        products: Mapping[int, ProductInfo] | None = None,
    ) -> None:
        """Analyse the next frames with ``analyse`` (another detector mode, or a pipeline
        reloaded after a catalogue or model change), optionally with new brand and product
        tables.

        Results so far are forgotten (``reset``) and a frame the old analyser is still on is
        dropped when it finishes, so counts never mix two analysers.
        """
        with self._cond:
            self._analyse = analyse
            if brand_names is not None:
                self._brand_names = dict(brand_names)
            if brand_colours is not None:
                self._brand_colours = dict(brand_colours)
            if products is not None:
                self._products = dict(products)
        self.reset()

    def save_once(self, save: Callable[[LiveState], int]) -> tuple[int, LiveState]:
        """Save the current results with ``save(state) -> audit id``, once until the next reset.

        Returns:
            ``(audit id, the state that was saved)``.

        Raises:
            AlreadySavedError: these results were saved already (a second click).
            Whatever ``save`` raises; nothing is marked saved then.
        """
        with self._save_lock:
            state = self.snapshot()
            if state.saved_audit_id is not None:
                raise AlreadySavedError(
                    f"this stream is saved already as audit {state.saved_audit_id}; press "
                    "'New audit' (or STOP and START) to audit the next shelf"
                )
            with self._cond:
                generation = self._generation
            audit_id = save(state)
            with self._cond:
                if generation == self._generation:  # a reset meanwhile began a new audit
                    self._saved_audit_id = audit_id
            return audit_id, state

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker thread (waits for a running analysis up to ``timeout_s``)."""
        with self._cond:
            self._closed = True
            worker = self._worker
            self._cond.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout_s)


def _overlay_text(state: LiveState) -> list[str]:
    top = sorted(state.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
    return [
        f"facings {state.products}  gaps {state.gaps}",
        *(f"{name[:18]}: {n}" for name, n in top),
        f"{state.fps:.1f} fps  {state.latency_ms:.0f} ms",
    ]
