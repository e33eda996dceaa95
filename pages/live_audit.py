"""Live audit page: the phone camera over WebRTC, live boxes and counts, "Save audit"."""

from __future__ import annotations

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from skuaudit import compat, live, ui
from skuaudit.config import get_settings

ui.ensure_routed()


STREAMER_KEY = "live_audit"


@st.cache_resource(show_spinner="Loading the detector and product recognition...", max_entries=2)
def _pipeline(db_url: str, version: str) -> live.LivePipeline:
    # NOTE: keyed on the catalogue and model version too: a new brand, product, reference image
    # or activated model reaches the live audit at its next page run, not at a server restart.
    return live.LivePipeline.load(db_url)


st.title("Live audit")
compat.install_webrtc_fixes()
live.apply_network_settings()
ctx = ui.audit_header()
db_url = get_settings().db_url

try:
    rtc_configuration = live.rtc_configuration()
except ValueError as exc:
    st.error(f"WebRTC network settings: {exc}")
    st.stop()

pipeline = None
with ui.user_errors("Loading the models"):
    version = live.pipeline_version(db_url)
    pipeline = _pipeline(db_url, version)
if pipeline is None:
    st.stop()

if "live_processor" not in st.session_state:
    st.session_state["live_processor"] = pipeline.new_processor(dense=live.DENSE_BY_DEFAULT)
    st.session_state["live_dense_active"] = live.DENSE_BY_DEFAULT
    st.session_state["live_pipeline_version"] = version
processor: live.LiveProcessor = st.session_state["live_processor"]
if st.session_state.get("live_pipeline_version") != version:
    processor.set_analyser(
        pipeline.analyser(dense=st.session_state["live_dense_active"]),
        pipeline.brand_names,
        pipeline.brand_colours,
        pipeline.products,
    )
    st.session_state["live_pipeline_version"] = version


def _new_audit() -> None:
    # Counts (and the saved mark) of the stream before must not leak into the next audit.
    processor.reset()
    st.session_state.pop("live_saved", None)
    st.session_state.pop("live_save_error", None)


def _on_stream_change() -> None:
    if st.session_state[STREAMER_KEY].state.playing:
        _new_audit()  # a new START begins a new audit


# NOTE: rendered on every full run, before anything that could stop the run: a run that skips it
# makes streamlit-webrtc tear the stream down (see compat.install_webrtc_fixes).
webrtc_ctx = webrtc_streamer(
    key=STREAMER_KEY,
    mode=WebRtcMode.SENDRECV,
    rtc_configuration=rtc_configuration,
    media_stream_constraints=live.MEDIA_STREAM_CONSTRAINTS,
    video_frame_callback=processor.callback,
    async_processing=True,
    on_change=_on_stream_change,
    video_html_attrs={
        "autoPlay": True,
        "controls": False,
        "muted": True,
        "style": {"width": "100%"},
    },
)
st.caption(
    "Point the back camera at the shelf and hold still for a second: counts are the median of "
    "the last frames. Use **Select device** to pick another camera. **Dense shelf** (on) counts "
    "each frame in tiles; switch it off for a faster, coarser count when the server is slow."
)


DENSE_HELP = (
    "On: analyse each frame in tiles at full resolution, which finds the small facings of a "
    "packed shelf and counts close to a photo audit. Off: one pass over the whole frame, about "
    "five times less work a frame but small facings are missed or miscounted. Switching starts "
    "the counts afresh."
)


def _save() -> None:
    # NOTE: a button callback, run before the fragment draws: the button is then drawn disabled
    # at once, and the messages stay in the session (the fragment reruns every second).
    st.session_state.pop("live_saved", None)
    st.session_state.pop("live_save_error", None)
    if ctx.store_id is None:
        st.session_state["live_save_error"] = "Choose a store in the sidebar first."
        return
    try:
        stored = live.save_live_audit(
            processor,
            ctx.store_id,
            pipeline,
            user_name=ctx.user_name,
            url=db_url,
            allow_empty=st.session_state.get("live_allow_empty", False),
        )
    except ui.USER_ERRORS as exc:
        st.session_state["live_save_error"] = f"Saving the audit failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - logged with its traceback, shown with its id
        st.session_state["live_save_error"] = ui.apology_for("Saving the audit", exc)
    else:
        st.session_state["live_saved"] = stored.message()


# A fragment refreshes the figures without full reruns, which would re-render the stream.
@st.fragment(run_every=1.0)
def _live_results() -> None:
    st.session_state.setdefault("live_dense", live.DENSE_BY_DEFAULT)
    dense = st.toggle("Dense shelf", key="live_dense", help=DENSE_HELP)
    if dense != st.session_state["live_dense_active"]:
        processor.set_analyser(pipeline.analyser(dense=dense))
        st.session_state["live_dense_active"] = dense
        _new_audit()
    state = processor.snapshot()
    # The server's view of the stream: "live" only while frames can reach the processor.
    stream = "live" if webrtc_ctx.state.playing else "stopped"
    mode = "Dense shelf" if dense else "one pass"
    st.markdown(
        f"Camera **{stream}** · {mode} · facings **{state.products}** · gaps **{state.gaps}** · "
        f"processed frames **{state.processed_frames}** · {state.fps:.1f} fps · "
        f"latency {state.latency_ms:.0f} ms"
    )
    if state.error:
        st.warning(f"The last frame could not be analysed: {state.error}")
    if state.counts:
        st.table(
            {"brand": list(state.counts), "facings": list(state.counts.values())},
            border="horizontal",
        )
        products = sorted(state.product_counts.items())
        st.table(
            {
                "brand": [brand for (brand, _), _ in products],
                "product": [product for (_, product), _ in products],
                "facings": [n for _, n in products],
            },
            border="horizontal",
        )
    nothing_found = state.frame_bgr is not None and state.products == 0 and state.gaps == 0
    if nothing_found:
        st.checkbox("Nothing detected: save an empty shelf anyway", key="live_allow_empty")
    saved = state.saved_audit_id is not None
    st.button(
        f"Save audit for {ctx.store_name or 'no store'}",
        type="primary",
        key="live_save",
        disabled=state.frame_bgr is None or saved,
        on_click=_save,
        help="Saves the shown counts with a snapshot, once per stream: press 'New audit' or "
        "STOP and START for the next shelf.",
    )
    if saved and (message := st.session_state.get("live_saved")):
        st.success(message)
        st.button(
            "New audit",
            key="live_new_audit",
            on_click=_new_audit,
            help="Start counting afresh on this stream, for the next shelf",
        )
    if state.frame_shape is not None and state.frame_shape[1] < live.REQUESTED_WIDTH:
        height, width = state.frame_shape
        st.caption(
            f"The video reaches the server at {width} x {height}, below the "
            f"{live.REQUESTED_WIDTH} px the page asks the camera for: the browser scales a "
            "stream down while its CPU or the network is busy, and the snapshot keeps the "
            "largest frames it has. For the most exact count, use Photo audit."
        )
    if error := st.session_state.get("live_save_error"):
        st.error(error)


_live_results()
