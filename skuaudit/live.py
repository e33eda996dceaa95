"""Live audit: the WebRTC frame processor, its network settings and a streamlit-webrtc fix.

``LiveProcessor`` sits between streamlit-webrtc's frame callback and the audit pipeline::

    camera frame --process()--> [size-1 slot] --worker thread--> analyse(frame) -> Detections
         |                                                              |
         +--- returned at once, drawn with the latest boxes <-----------+--> history (last N)

- ``process`` (called on streamlit-webrtc's callback thread) never waits for the detector: it
  leaves the frame in a one-frame slot, replacing a frame the worker has not picked up yet (a
  stale frame is dropped, so latency cannot build up), and returns the frame annotated with the
  newest boxes it has. The video the phone shows back therefore keeps its camera frame rate while
  the boxes refresh at the detector's rate.
- One worker thread runs the detector and product recognition on the newest frame, then records
  the boxes, the counts per product, the processed-frame counter and the latency (frame arrival to
  boxes ready; shown as the median over the window, on the video and on the page alike). It exits after a while without frames and ``process`` starts it again.
- ``snapshot`` (called from the page) returns a ``LiveState``: counts smoothed over the last
  ``window`` processed frames (per-product median, summed per brand), so one bad frame neither
  flickers the page nor
  changes a saved audit; and the frame of the window whose counts are closest to those medians,
  which is what "Save audit" stores.

streamlit-webrtc has its own drop policy, one level up: with ``async_processing=True`` (the
default) the callback runs on a separate thread fed through a queue; frames that queued while the
callback was busy are skipped (``_fallback_recv_queued`` passes only the newest) and the outgoing
track repeats the last output frame meanwhile. Our ``process`` returns in a few milliseconds, so in
practice frames are dropped in our slot, where they are counted.

Network settings (``rtc_configuration``) come from ``SKUAUDIT_ICE_SERVERS`` and the TURN
credential variables; ``apply_network_settings`` also honours ``SKUAUDIT_ICE_LOOPBACK_ONLY`` (tests,
offline demos). The page also installs ``skuaudit.compat.install_webrtc_fixes`` (two
streamlit-webrtc races).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from skuaudit.detections import GAP, PRODUCT, Detections
from skuaudit.drawing import BGR, box_colours, draw_boxes, hex_to_bgr
from skuaudit.errors import UserError
from skuaudit.metrics import UNKNOWN_BRAND_ID, UNKNOWN_NAME, UNKNOWN_PRODUCT_NAME, ProductInfo

log = logging.getLogger(__name__)

ICE_SERVERS_ENV = "SKUAUDIT_ICE_SERVERS"
TURN_USERNAME_ENV = "SKUAUDIT_TURN_USERNAME"
TURN_CREDENTIAL_ENV = "SKUAUDIT_TURN_CREDENTIAL"
LOOPBACK_ONLY_ENV = "SKUAUDIT_ICE_LOOPBACK_ONLY"

DEFAULT_WINDOW = 15

# Camera constraints: the back camera on phones ("environment"); desktops ignore facingMode.
REQUESTED_WIDTH, REQUESTED_HEIGHT = 640, 480
MEDIA_STREAM_CONSTRAINTS: dict = {
    "video": {
        "facingMode": {"ideal": "environment"},
        "width": {"ideal": REQUESTED_WIDTH},
        "height": {"ideal": REQUESTED_HEIGHT},
    },
    "audio": False,
}

Analyser = Callable[[np.ndarray], Detections]


class AlreadySavedError(UserError):
    """The live results were saved already; a new audit needs new frames."""


def _area(shape: tuple[int, ...]) -> int:
    return int(shape[0]) * int(shape[1])


class PipelineLoadError(UserError):
    """A model the live audit needs is missing or broken; the message names the folder and file."""


# --------------------------------------------------------------------------- network settings


def ice_servers_from_env(environ: Mapping[str, str] | None = None) -> list[dict]:
    """ICE servers from ``SKUAUDIT_ICE_SERVERS`` (a JSON list), TURN credentials filled in.

    A TURN entry (``turn:``/``turns:`` URL) without ``username``/``credential`` takes them from
    ``SKUAUDIT_TURN_USERNAME``/``SKUAUDIT_TURN_CREDENTIAL``, so secrets can stay out of the list.

    Args:
        environ: the variables to read; ``None`` reads ``os.environ``.

    Returns:
        The list for ``{"iceServers": ...}``; empty when the variable is unset (LAN or offline:
        host candidates only, no STUN lookup).

    Raises:
        ValueError: not JSON, not a list of ``{"urls": ...}`` objects, or a TURN server without
            credentials.

    Example:
        >>> ice_servers_from_env({"SKUAUDIT_ICE_SERVERS": '[{"urls": "turn:t.example:3478"}]',
        ...                       "SKUAUDIT_TURN_USERNAME": "u", "SKUAUDIT_TURN_CREDENTIAL": "p"})
        [{'urls': 'turn:t.example:3478', 'username': 'u', 'credential': 'p'}]
    """
    env = os.environ if environ is None else environ
    raw = (env.get(ICE_SERVERS_ENV) or "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserError(f"{ICE_SERVERS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(servers, list):
        raise UserError(
            f'{ICE_SERVERS_ENV} must be a JSON list such as [{{"urls": "stun:host:3478"}}], '
            f"got a {type(servers).__name__}"
        )
    username, credential = env.get(TURN_USERNAME_ENV), env.get(TURN_CREDENTIAL_ENV)
    result = []
    for i, server in enumerate(servers):
        urls = server.get("urls") if isinstance(server, dict) else None
        url_list = [urls] if isinstance(urls, str) else urls
        if (
            not isinstance(url_list, list)
            or not url_list
            or not all(isinstance(u, str) and u for u in url_list)
        ):
            # The entry itself is not echoed: it may hold a credential.
            raise UserError(
                f'{ICE_SERVERS_ENV}[{i}] must be an object with "urls" (a URL or a list of URLs)'
            )
        entry = dict(server)
        if any(u.startswith(("turn:", "turns:")) for u in url_list):
            if "username" not in entry and username:
                entry["username"] = username
            if "credential" not in entry and credential:
                entry["credential"] = credential
            if "username" not in entry or "credential" not in entry:
                raise UserError(
                    f"{ICE_SERVERS_ENV}[{i}] ({url_list[0]}) is a TURN server without credentials: "
                    f"add username/credential to it or set {TURN_USERNAME_ENV} and {TURN_CREDENTIAL_ENV}"
                )
        result.append(entry)
    return result


def rtc_configuration(environ: Mapping[str, str] | None = None) -> dict:
    """``{"iceServers": [...]}`` for ``webrtc_streamer(rtc_configuration=...)``.

    Raises:
        ValueError: see ``ice_servers_from_env``.
    """
    return {"iceServers": ice_servers_from_env(environ)}


def apply_network_settings(environ: Mapping[str, str] | None = None) -> None:
    """Apply ``SKUAUDIT_ICE_LOOPBACK_ONLY=1``: the server offers only 127.0.0.1 as ICE candidate.

    aioice leaves 127.0.0.1 out of its host candidates, so a browser on the same machine with no
    other route (a sandboxed test, an offline demo) cannot connect; this test/offline setting
    replaces the address list. Never set it on a server that phones reach over the network.
    """
    env = os.environ if environ is None else environ
    if env.get(LOOPBACK_ONLY_ENV, "").strip() == "1":
        from skuaudit.compat import use_loopback_ice_candidates

        use_loopback_ice_candidates()


# --------------------------------------------------------------------------- counting and smoothing


def count_by_brand(detections: Detections, brand_names: Mapping[int, str]) -> dict[str, int]:
    """Product facings per brand name (``"unknown"`` for unrecognised products; gaps excluded).

    Example:
        >>> det = Detections(np.zeros((3, 4)), class_id=[0, 0, 1], data={"brand_id": [7, -1, -1]})
        >>> count_by_brand(det, {7: "Acme"})
        {'Acme': 1, 'unknown': 1}
    """
    products = detections.class_id == PRODUCT
    brand_ids = np.asarray(
        detections.data.get("brand_id", np.full(len(detections), UNKNOWN_BRAND_ID))
    )[products]
    counts: dict[str, int] = {}
    for brand_id in brand_ids.tolist():
        name = brand_names.get(int(brand_id), UNKNOWN_NAME)
        counts[name] = counts.get(name, 0) + 1
    return counts


def count_by_product(
    detections: Detections,
    brand_names: Mapping[int, str],
    products: Mapping[int, ProductInfo],
) -> dict[tuple[str, str], int]:
    """Product facings per ``(brand, product)`` name; ``(brand, "unknown product")`` for facings
    of a known brand whose product was not recognised, ``("unknown", "unknown")`` for the rest.

    Example:
        >>> det = Detections(np.zeros((3, 4)), class_id=[0, 0, 0],
        ...                  data={"product_id": [5, -1, -1], "brand_id": [7, 7, -1]})
        >>> count_by_product(det, {7: "Acme"}, {5: ProductInfo(7, "Cola")})
        {('Acme', 'Cola'): 1, ('Acme', 'unknown product'): 1, ('unknown', 'unknown'): 1}
    """
    products_mask = detections.class_id == PRODUCT
    n = len(detections)
    product_ids = np.asarray(detections.data.get("product_id", np.full(n, -1)))[products_mask]
    brand_ids = np.asarray(detections.data.get("brand_id", np.full(n, UNKNOWN_BRAND_ID)))
    counts: dict[tuple[str, str], int] = {}
    for product_id, brand_id in zip(
        product_ids.tolist(), brand_ids[products_mask].tolist(), strict=True
    ):
        product = products.get(int(product_id))
        if product is not None and product.brand_id in brand_names:
            key = (brand_names[product.brand_id], product.name)
        elif int(brand_id) in brand_names:
            key = (brand_names[int(brand_id)], UNKNOWN_PRODUCT_NAME)
        else:
            key = (UNKNOWN_NAME, UNKNOWN_NAME)
        counts[key] = counts.get(key, 0) + 1
    return counts


def roll_up(product_counts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Facings per brand: the sums of ``count_by_product``'s counts.

    Example:
        >>> roll_up({("Acme", "Cola"): 2, ("Acme", "Lime"): 1, ("unknown", "unknown"): 1})
        {'Acme': 3, 'unknown': 1}
    """
    brands: dict[str, int] = {}
    for (brand, _), n in product_counts.items():
        brands[brand] = brands.get(brand, 0) + n
    return brands


def smooth_counts(history: Sequence[Mapping]) -> dict:
    """Per-key median over frames, a key missing from a frame counting 0; zero medians left out.

    ``median_low`` keeps the result a count that was actually seen.

    Example:
        >>> smooth_counts([{"a": 3}, {"a": 9, "b": 1}, {"a": 3}])
        {'a': 3}
    """
    keys = sorted({k for counts in history for k in counts})
    smoothed = {k: statistics.median_low([counts.get(k, 0) for counts in history]) for k in keys}
    return {k: v for k, v in smoothed.items() if v > 0}


def _count_distance(a: Mapping[str, int], b: Mapping[str, int]) -> int:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))


# --------------------------------------------------------------------------- drawing


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
        product_counts: smoothed facings per ``(brand, product)`` name (median over the window;
            see ``count_by_product``).
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
        # The gaps key is smoothed too, so that the representative frame matches them as well.
        smoothed = smooth_counts([s.counts for s in self._history])
        # The snapshot keeps the best resolution the window has: frames the browser scaled down
        # (a busy CPU or network) are used only when no larger one is left.
        largest = max(_area(s.frame_bgr.shape) for s in self._history)
        best = min(
            (s for s in reversed(self._history) if _area(s.frame_bgr.shape) == largest),
            key=lambda s: _count_distance(s.counts, smoothed),
        )
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


# --------------------------------------------------------------------------- wiring to the pipeline


class VideoDetector:
    """The detector in video mode: the same frame-rate-first path for every frame.

    Args:
        detector: a ``skuaudit.detector.Detector``.
        dense: ``False`` runs one pass over the whole frame squashed to the model input (speed
            first; the default). ``True`` runs the frame in overlapping tiles at full resolution,
            for a packed shelf whose facings are too small for one pass. Those are the photo
            path's tiles without its mirrored view and extra gap tile sizes, which cost several
            times more for gap boxes only.
    """

    def __init__(self, detector, *, dense: bool = False) -> None:
        self.dense = dense
        self.model_dir = getattr(detector, "model_dir", None)
        self._detector = (
            detector.with_config(flip_classes=[], multiscale_classes=[]) if dense else detector
        )

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self._detector.detect(image_bgr, tiled=self.dense)


@dataclass
class LivePipeline:
    """The models and brand table a live session uses, loaded once per server.

    Attributes:
        detector: the active detector, in single-pass mode.
        dense_detector: the same detector in tiles, for packed shelves (``VideoDetector``).
        recognizer: product recognition model.
        gallery: enrolled reference embeddings.
        brand_names: brand id -> name.
        brand_colours: brand id -> BGR colour (the catalogue colour).
        products: product id -> ``ProductInfo`` (brand and name).
        model_name: name saved with audits.
        model_version_id: ``ModelVersion`` of the detector, when registered.
    """

    detector: VideoDetector
    dense_detector: VideoDetector
    recognizer: object
    gallery: object
    brand_names: dict[int, str]
    brand_colours: dict[int, BGR]
    model_name: str
    model_version_id: int | None = None
    products: dict[int, ProductInfo] = field(default_factory=dict)

    @classmethod
    def load(cls, url: str | None = None, model_dir: str | Path | None = None) -> LivePipeline:
        """Load the active detector, the recognizer, the gallery, the brands and products.

        Raises:
            PipelineLoadError: a model folder that is missing or broken.
        """
        from skuaudit.audit import detector_name, load_detector
        from skuaudit.detector import ModelLoadError
        from skuaudit.model_registry import model_version_for
        from skuaudit.recognition import Gallery, RecognitionModelError, Recognizer
        from skuaudit.storage.queries import list_brands, product_infos

        try:
            loaded = load_detector(model_dir, url)
            recognizer = Recognizer.load()
        except (ModelLoadError, RecognitionModelError) as exc:
            raise PipelineLoadError(str(exc)) from exc
        gallery = Gallery.from_database(url, recognizer)
        brands = list_brands(url)
        detector = VideoDetector(loaded)
        return cls(
            detector=detector,
            dense_detector=VideoDetector(loaded, dense=True),
            recognizer=recognizer,
            gallery=gallery,
            brand_names={b.id: b.name for b in brands},
            brand_colours={b.id: hex_to_bgr(b.color_hex) for b in brands},
            model_name=detector_name(detector, url),
            model_version_id=model_version_for(detector.model_dir, url),
            products=product_infos(url),
        )

    def analyse(self, frame_bgr: np.ndarray, *, dense: bool = False) -> Detections:
        """Detections with products, brands and shelf rows of one frame (``audit.analyse_image``,
        the fast recognition path); ``dense`` runs the detector in tiles (``VideoDetector``)."""
        from skuaudit.audit import analyse_image

        detector = self.dense_detector if dense else self.detector
        return analyse_image(
            frame_bgr, detector, self.recognizer, self.gallery, fast=True
        ).detections

    def analyser(self, *, dense: bool = False) -> Analyser:
        """The frame -> detections function of a ``LiveProcessor`` in one detector mode."""
        return functools.partial(self.analyse, dense=dense)

    def new_processor(self, window: int = DEFAULT_WINDOW, *, dense: bool = False) -> LiveProcessor:
        return LiveProcessor(
            self.analyser(dense=dense),
            self.brand_names,
            self.brand_colours,
            window=window,
            products=self.products,
        )


def pipeline_version(url: str | None = None) -> str:
    """A cache key of what ``LivePipeline.load`` reads: the active model folder (and when its
    files last changed), the brands, the products and the reference images. A new brand,
    product, reference or activated model changes it, so the live page reloads its pipeline
    (the Photo audit page reads them per photo batch).
    """
    import hashlib

    import sqlalchemy as sa

    from skuaudit.model_registry import active_model_dir
    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    model_dir = active_model_dir(url)
    changed = [p.stat().st_mtime_ns for p in sorted(model_dir.glob("*")) if p.is_file()]
    with session_scope(url) as s:
        brands = s.execute(
            sa.select(m.Brand.id, m.Brand.name, m.Brand.color_hex, m.Brand.deleted_at).order_by(
                m.Brand.id
            )
        ).all()
        products = s.execute(
            sa.select(m.Product.id, m.Product.brand_id, m.Product.name).order_by(m.Product.id)
        ).all()
        references = tuple(
            s.execute(
                sa.select(sa.func.count(m.ReferenceImage.id), sa.func.max(m.ReferenceImage.id))
            ).one()
        )
    catalogue = ([tuple(b) for b in brands], [tuple(p) for p in products], references)
    key = repr((str(model_dir.resolve()), changed, catalogue))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def save_live_audit(
    processor: LiveProcessor,
    store_id: int,
    pipeline: LivePipeline,
    *,
    user_name: str = "",
    url: str | None = None,
    allow_empty: bool = False,
):
    """Save the processor's smoothed result as one audit, once per stream (``save_once``).

    The snapshot is the window's representative frame (at the largest size the window holds)
    with its own detections, so the saved detections, counts and snapshot agree with each
    other; ``save_audit`` writes everything in one transaction.

    Returns:
        ``audit.SavedAudit``: what the database now holds (facings, gaps, snapshot size), which
        is what the page reports.

    Raises:
        UserError: nothing processed yet, nothing detected and not ``allow_empty``
            (``EmptyAuditError``), unknown store, or saved already (``AlreadySavedError``).
    """
    from skuaudit.audit import EmptyAuditError, ImageAnalysis, save_audit, saved_audit

    def save(state: LiveState) -> int:
        if state.frame_bgr is None:
            raise UserError("no frame has been analysed yet: start the camera first")
        if not allow_empty and len(state.detections) == 0:
            raise EmptyAuditError(
                "nothing was detected in the last frames (0 facings, 0 gaps); tick 'Nothing "
                "detected: save an empty shelf anyway' to record an empty shelf"
            )
        return save_audit(
            store_id,
            [ImageAnalysis(state.frame_bgr, state.detections)],
            source="live",
            user_name=user_name,
            model_name=pipeline.model_name,
            model_version_id=pipeline.model_version_id,
            url=url,
            allow_empty=allow_empty,
        )

    audit_id, _ = processor.save_once(save)
    return saved_audit(audit_id, url)
