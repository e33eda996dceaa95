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
- One worker thread runs the detector and brand recognition on the newest frame, then records the
  boxes, the counts per brand, the processed-frame counter and the latency (frame arrival to
  boxes ready; shown as the median over the window, on the video and on the page alike). It exits after a while without frames and ``process`` starts it again.
- ``snapshot`` (called from the page) returns a ``LiveState``: counts smoothed over the last
  ``window`` processed frames (per-brand median), so one bad frame neither flickers the page nor
  changes a saved audit; and the frame of the window whose counts are closest to those medians,
  which is what "Save audit" stores.

streamlit-webrtc has its own drop policy, one level up: with ``async_processing=True`` (the
default) the callback runs on a separate thread fed through a queue; frames that queued while the
callback was busy are skipped (``_fallback_recv_queued`` passes only the newest) and the outgoing
track repeats the last output frame meanwhile. Our ``process`` returns in a few milliseconds, so in
practice frames are dropped in our slot, where they are counted.

Network settings (``rtc_configuration``) come from ``SKUAUDIT_ICE_SERVERS`` and the TURN
credential variables; ``apply_network_settings`` also honours ``SKUAUDIT_ICE_LOOPBACK_ONLY`` (tests,
offline demos). ``install_webrtc_fixes`` patches two streamlit-webrtc races (see there).
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

log = logging.getLogger(__name__)

ICE_SERVERS_ENV = "SKUAUDIT_ICE_SERVERS"
TURN_USERNAME_ENV = "SKUAUDIT_TURN_USERNAME"
TURN_CREDENTIAL_ENV = "SKUAUDIT_TURN_CREDENTIAL"
LOOPBACK_ONLY_ENV = "SKUAUDIT_ICE_LOOPBACK_ONLY"

UNKNOWN_BRAND_ID = -1
UNKNOWN_NAME = "unknown"
DEFAULT_WINDOW = 15

# Camera constraints: the back camera on phones ("environment"); desktops ignore facingMode.
MEDIA_STREAM_CONSTRAINTS: dict = {
    "video": {
        "facingMode": {"ideal": "environment"},
        "width": {"ideal": 640},
        "height": {"ideal": 480},
    },
    "audio": False,
}

BGR = tuple[int, int, int]
UNKNOWN_COLOUR: BGR = (160, 160, 160)
GAP_COLOUR: BGR = (0, 0, 255)

Analyser = Callable[[np.ndarray], Detections]


class PipelineLoadError(RuntimeError):
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
        raise ValueError(f"{ICE_SERVERS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(servers, list):
        raise ValueError(
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
            raise ValueError(
                f'{ICE_SERVERS_ENV}[{i}] must be an object with "urls" (a URL or a list of URLs)'
            )
        entry = dict(server)
        if any(u.startswith(("turn:", "turns:")) for u in url_list):
            if "username" not in entry and username:
                entry["username"] = username
            if "credential" not in entry and credential:
                entry["credential"] = credential
            if "username" not in entry or "credential" not in entry:
                raise ValueError(
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


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def apply_network_settings(environ: Mapping[str, str] | None = None) -> None:
    """Apply ``SKUAUDIT_ICE_LOOPBACK_ONLY=1``: the server offers only 127.0.0.1 as ICE candidate.

    aioice leaves 127.0.0.1 out of its host candidates, so a browser on the same machine with no
    other route (a sandboxed test, an offline demo) cannot connect; this test/offline setting
    replaces the address list. Never set it on a server that phones reach over the network.
    """
    env = os.environ if environ is None else environ
    if env.get(LOOPBACK_ONLY_ENV, "").strip() == "1":
        import aioice.ice

        aioice.ice.get_host_addresses = _loopback_host_addresses


# --------------------------------------------------------------------------- streamlit-webrtc fixes

_completed_runs: dict[str, int] = {}
_completed_runs_lock = threading.Lock()


def install_webrtc_fixes() -> None:
    """Patch two races of streamlit-webrtc 0.79 under Streamlit's fast reruns; idempotent.

    Both come from ``runner.fastReruns`` (on by default): every message from the browser (each
    START/STOP, SDP offer, batch of ICE candidates) stops the running script thread and starts a
    new one at once, so two runs of one session can overlap, and the stopped run's messages are
    dropped unsent.

    1. **Stale reset after a quick STOP -> START** (seen in 4 of 20 STARTs on a loaded 2-core
       machine): the STOP run calls ``_reset_context``, which blocks in ``worker.stop()`` (up to
       ~2 s of timeouts) and only then writes "not playing, not signalling". If START is pressed
       meanwhile, the new run's ``on_change`` has already stored "signalling"; the late write
       overwrites it. The browser keeps the same SDP offer, so the value never changes again:
       every run sees an offer with a "stopped" state, creates a worker, and the next run stops
       it ("Create a new worker" / "Reset the stopped WebRTC context" once a second): the video
       never starts. The patched reset detaches the worker and clears the state first, leaves a
       state or a worker that a newer run stored in the meantime alone, and stops the old worker
       last.
    2. **"was not rendered" reset**: a context is reset (worker stopped: black video) when
       ``session_info.script_run_count`` grew by more than one since the run that last rendered
       it. That counter grows on the event loop when a ``script_finished`` message is *sent*, so
       it skips runs whose message was dropped and can catch up by two between two runs that
       both rendered the stream. Finished runs are counted on the script thread instead, with
       the rule Streamlit uses to drop undrawn widgets: a full run that ended normally.
       Page switches are still detected: the other page's runs are counted.
    """
    import streamlit_webrtc.component as webrtc_component
    from streamlit.runtime.scriptrunner import ScriptRunner, ScriptRunnerEvent

    if getattr(ScriptRunner._on_script_finished, "_skuaudit_counts_runs", False):
        return
    original = ScriptRunner._on_script_finished

    @functools.wraps(original)
    def counting(self, ctx, event, premature_stop, *args, **kwargs):
        if event == ScriptRunnerEvent.SCRIPT_STOPPED_WITH_SUCCESS and not premature_stop:
            with _completed_runs_lock:
                _completed_runs[ctx.session_id] = _completed_runs.get(ctx.session_id, 0) + 1
        return original(self, ctx, event, premature_stop, *args, **kwargs)

    counting._skuaudit_counts_runs = True
    ScriptRunner._on_script_finished = counting

    def completed_runs(session_info) -> int:
        with _completed_runs_lock:
            return _completed_runs.get(session_info.session.id, 0)

    webrtc_component.get_script_run_count = completed_runs
    webrtc_component._reset_context = _reset_context_then_stop


def _reset_context_then_stop(context) -> None:
    """streamlit-webrtc's ``_reset_context`` with the slow ``worker.stop()`` moved to the end.

    A state or worker replaced while this runs belongs to a newer run (see
    ``install_webrtc_fixes``) and is kept.
    """
    from streamlit_webrtc.component import WebRtcStreamerState

    state, worker = context.state, context._get_worker()
    if context._get_worker() is worker:
        context._set_worker(None)
    if context.state is state:
        context._set_state(WebRtcStreamerState(playing=False, signalling=False))
    context._sdp_answer_json = None
    context._is_sdp_answer_sent = False
    context._component_value_snapshot = None
    if worker is not None:
        worker.stop()


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


def smooth_counts(history: Sequence[Mapping[str, int]]) -> dict[str, int]:
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


def hex_to_bgr(color_hex: str) -> BGR:
    """``"#RRGGBB"`` to an OpenCV BGR tuple (grey when malformed)."""
    text = color_hex.lstrip("#")
    try:
        r, g, b = (int(text[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return UNKNOWN_COLOUR
    return (b, g, r)


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
    brand_ids = detections.data.get("brand_id", np.full(len(detections), UNKNOWN_BRAND_ID))
    thickness = max(1, round(frame_bgr.shape[1] / 400))
    for box, class_id, brand_id in zip(
        detections.xyxy.round().astype(int), detections.class_id, brand_ids, strict=True
    ):
        colour = GAP_COLOUR if class_id == GAP else brand_colours.get(int(brand_id), UNKNOWN_COLOUR)
        cv2.rectangle(frame_bgr, (box[0], box[1]), (box[2], box[3]), colour, thickness)
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


@dataclass(frozen=True)
class _Sample:
    frame_bgr: np.ndarray
    detections: Detections
    counts: dict[str, int]


@dataclass(frozen=True)
class LiveState:
    """What the page shows and "Save audit" stores; a consistent copy taken under the lock.

    Attributes:
        counts: smoothed product facings per brand name (median over the window).
        gaps: smoothed number of gaps.
        processed_frames: frames the detector has finished since the processor was made.
        received_frames: frames handed to ``process``.
        dropped_frames: frames replaced in the slot before the detector could take them.
        fps: processed frames per second over the window.
        latency_ms: median over the window of the frames' time from arrival in ``process`` to
            their boxes being ready (the overlay and the page's status line show the same figure).
        last_latency_ms: the newest processed frame's own latency (benchmarks).
        frame_bgr: the window's frame whose counts are closest to the smoothed ones (newest on
            ties); ``None`` before the first processed frame.
        detections: that frame's detections.
        error: the last analysis error, if the newest attempt failed.
    """

    counts: dict[str, int] = field(default_factory=dict)
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

    @property
    def products(self) -> int:
        """Smoothed facings of all brands together."""
        return sum(self.counts.values())


class LiveProcessor:
    """Thread-safe frame processor: returns frames at once, analyses the newest on a worker thread.

    Args:
        analyse: frame -> ``Detections`` with ``data["brand_id"]`` (runs on the worker thread).
        brand_names: brand id -> name, for counting.
        brand_colours: brand id -> BGR box colour.
        window: processed frames the counts are smoothed over.
        idle_timeout_s: the worker thread exits after this long without frames.

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
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self._analyse = analyse
        self._generation = 0  # bumped by set_analyser: results of the analyser before are dropped
        self._brand_names = dict(brand_names)
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
            counts = count_by_brand(detections, self._brand_names)
            gaps = int(np.count_nonzero(detections.class_id == GAP))
            with self._cond:
                if generation != self._generation:  # analysed in the mode set_analyser replaced
                    continue
                self._history.append(_Sample(frame, detections, {**counts, "": gaps}))
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
            )
        # The empty key holds the gaps, so that the representative frame matches them too.
        smoothed = smooth_counts([s.counts for s in self._history])
        best = min(reversed(self._history), key=lambda s: _count_distance(s.counts, smoothed))
        times = self._done_times
        fps = (
            (len(times) - 1) / (times[-1] - times[0])
            if len(times) > 1 and times[-1] > times[0]
            else 0.0
        )
        gaps = smoothed.pop("", 0)
        return LiveState(
            counts=smoothed,
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
        """Forget results and counters (a new audit); a frame being analysed still lands."""
        with self._cond:
            self._history.clear()
            self._done_times.clear()
            self._latencies_ms.clear()
            self._latest, self._latest_shape, self._overlay_lines = Detections.empty(), None, []
            self._processed = self._received = self._dropped = 0
            self._error = None

    def set_analyser(self, analyse: Analyser) -> None:
        """Analyse the next frames with ``analyse`` (e.g. another detector mode).

        Results so far are forgotten (``reset``) and a frame the old analyser is still on is
        dropped when it finishes, so counts never mix two analysers.
        """
        with self._cond:
            self._analyse = analyse
            self._generation += 1
        self.reset()

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
        recognizer: brand recognition model.
        gallery: enrolled reference embeddings.
        brand_names: brand id -> name.
        brand_colours: brand id -> BGR colour (the catalogue colour).
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

    @classmethod
    def load(cls, url: str | None = None, model_dir: str | Path | None = None) -> LivePipeline:
        """Load the active detector, the recognizer, the gallery and the brands.

        Raises:
            PipelineLoadError: a model folder that is missing or broken.
        """
        from skuaudit.audit import detector_name, load_detector
        from skuaudit.detector import ModelLoadError
        from skuaudit.model_registry import model_version_for
        from skuaudit.recognition import Gallery, RecognitionModelError, Recognizer
        from skuaudit.storage.queries import list_brands

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
        )

    def analyse(self, frame_bgr: np.ndarray, *, dense: bool = False) -> Detections:
        """Detections with brands and shelf rows of one frame (``audit.analyse_image``, the fast
        recognition path); ``dense`` runs the detector in tiles (``VideoDetector``)."""
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
            self.analyser(dense=dense), self.brand_names, self.brand_colours, window=window
        )


def save_live_audit(
    state: LiveState,
    store_id: int,
    pipeline: LivePipeline,
    *,
    user_name: str = "",
    url: str | None = None,
    allow_empty: bool = False,
) -> int:
    """Save the smoothed live result as one audit: the representative frame and its detections.

    The representative frame is the one of the smoothing window whose counts are closest to the
    medians, so the saved detections, counts and snapshot agree with each other; the audit
    engineer's ``save_audit`` writes everything in one transaction.

    Raises:
        ValueError: nothing processed yet, nothing detected and not ``allow_empty``
            (``EmptyAuditError``), or unknown store.
    """
    from skuaudit.audit import EmptyAuditError, ImageAnalysis, save_audit

    if state.frame_bgr is None:
        raise ValueError("no frame has been analysed yet: start the camera first")
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
