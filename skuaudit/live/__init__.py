"""Live audit: the WebRTC frame processor, its network settings and the wiring to the pipeline.

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

The package, one module per part (every name is importable from ``skuaudit.live`` as before):

- ``network``: ICE servers and TURN credentials from the environment, the loopback-only setting,
  the camera constraints.
- ``counting``: facings per brand and per product in a frame, and their smoothing over the window.
- ``processor``: ``LiveProcessor`` (the slot, the worker thread, the window), ``LiveState`` and
  the overlay drawn on returned frames (boxes through ``skuaudit.drawing``).
- ``pipeline``: ``VideoDetector``, ``LivePipeline`` (the models and brands loaded once per
  server), ``pipeline_version`` (its cache key) and ``save_live_audit``. Each analyser
  (``LivePipeline.analyser``, one per stream) holds a ``skuaudit.recognition.TrackCache``: the
  facings still in place since the previous frame keep their embedding, so a frame embeds only
  its new or changed facings, at most ``TrackCache.budget`` of them; the others are pending
  (``data["pending"]``: counted as "pending", named before a live audit is saved).

The streamlit-webrtc and aioice patches live in ``skuaudit.compat``.
"""

from skuaudit.live.counting import count_by_brand, count_by_product, roll_up, smooth_counts
from skuaudit.live.network import (
    ICE_SERVERS_ENV,
    LOOPBACK_ONLY_ENV,
    MEDIA_STREAM_CONSTRAINTS,
    REQUESTED_HEIGHT,
    REQUESTED_WIDTH,
    TURN_CREDENTIAL_ENV,
    TURN_USERNAME_ENV,
    apply_network_settings,
    ice_servers_from_env,
    rtc_configuration,
)
from skuaudit.live.pipeline import (
    DENSE_BY_DEFAULT,
    LivePipeline,
    PipelineLoadError,
    VideoDetector,
    pipeline_version,
    save_live_audit,
)
from skuaudit.live.processor import (
    DEFAULT_WINDOW,
    AlreadySavedError,
    Analyser,
    LiveProcessor,
    LiveState,
    _overlay_text,
    draw_live_overlay,
)

__all__ = [
    "DEFAULT_WINDOW",
    "DENSE_BY_DEFAULT",
    "ICE_SERVERS_ENV",
    "LOOPBACK_ONLY_ENV",
    "MEDIA_STREAM_CONSTRAINTS",
    "REQUESTED_HEIGHT",
    "REQUESTED_WIDTH",
    "TURN_CREDENTIAL_ENV",
    "TURN_USERNAME_ENV",
    "AlreadySavedError",
    "Analyser",
    "LivePipeline",
    "LiveProcessor",
    "LiveState",
    "PipelineLoadError",
    "VideoDetector",
    "_overlay_text",
    "apply_network_settings",
    "count_by_brand",
    "count_by_product",
    "draw_live_overlay",
    "ice_servers_from_env",
    "pipeline_version",
    "roll_up",
    "rtc_configuration",
    "save_live_audit",
    "smooth_counts",
]
