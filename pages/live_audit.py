"""Live audit page: the phone camera over WebRTC, live boxes and counts, "Save audit"."""

from __future__ import annotations

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from skuaudit import live, ui
from skuaudit.config import get_settings

STREAMER_KEY = "live_audit"


@st.cache_resource(show_spinner="Loading the detector and product recognition...")
def _pipeline(db_url: str) -> live.LivePipeline:
    return live.LivePipeline.load(db_url)


st.title("Live audit")
live.install_webrtc_fixes()
live.apply_network_settings()
ctx = ui.context()
db_url = get_settings().db_url

try:
    rtc_configuration = live.rtc_configuration()
except ValueError as exc:
    st.error(f"WebRTC network settings: {exc}")
    st.stop()

try:
    pipeline = _pipeline(db_url)
except (live.PipelineLoadError, *ui.USER_ERRORS) as exc:
    st.error(f"Loading the models failed: {exc}")
    st.stop()

if "live_processor" not in st.session_state:
    st.session_state["live_processor"] = pipeline.new_processor()
processor: live.LiveProcessor = st.session_state["live_processor"]


def _on_stream_change() -> None:
    # A new START begins a new audit: counts from an earlier stream must not leak into it.
    if st.session_state[STREAMER_KEY].state.playing:
        processor.reset()
        st.session_state.pop("live_saved", None)
        st.session_state.pop("live_save_error", None)


# NOTE: rendered on every full run, before anything that could stop the run: a run that skips it
# makes streamlit-webrtc tear the stream down (see live.install_webrtc_fixes).
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
    "the last frames. Use **Select device** to pick another camera. On a packed shelf, switch "
    "on **Dense shelf** below: one pass over the frame misses small facings."
)


DENSE_HELP = (
    "Analyse each frame in tiles at full resolution instead of one pass over the whole frame. "
    "On a packed shelf, one pass misses small facings; the tiles find them, at a lower frame "
    "rate. Switching starts the counts afresh."
)


# A fragment refreshes the figures without full reruns, which would re-render the stream.
@st.fragment(run_every=1.0)
def _live_results() -> None:
    dense = st.toggle("Dense shelf", key="live_dense", help=DENSE_HELP)
    if dense != st.session_state.get("live_dense_active", False):
        processor.set_analyser(pipeline.analyser(dense=dense))
        st.session_state["live_dense_active"] = dense
        st.session_state.pop("live_saved", None)
        st.session_state.pop("live_save_error", None)
    state = processor.snapshot()
    # The server's view of the stream: "live" only while frames can reach the processor.
    stream = "live" if webrtc_ctx.state.playing else "stopped"
    st.markdown(
        f"Camera **{stream}** · facings **{state.products}** · gaps **{state.gaps}** · "
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
    allow_empty = False
    if nothing_found:
        allow_empty = st.checkbox(
            "Nothing detected: save an empty shelf anyway", key="live_allow_empty"
        )
    # Messages are kept in the session: this fragment reruns every second and would wipe them.
    if st.button("Save audit", type="primary", disabled=state.frame_bgr is None):
        st.session_state.pop("live_saved", None)
        st.session_state.pop("live_save_error", None)
        if ctx.store_id is None:
            st.session_state["live_save_error"] = "Choose a store in the sidebar first."
        else:
            try:
                audit_id = live.save_live_audit(
                    state,
                    ctx.store_id,
                    pipeline,
                    user_name=ctx.user_name,
                    url=db_url,
                    allow_empty=allow_empty,
                )
            except ui.USER_ERRORS as exc:
                st.session_state["live_save_error"] = f"Saving the audit failed: {exc}"
            else:
                st.session_state["live_saved"] = (
                    f"Audit {audit_id} saved: {state.products} facings, {state.gaps} gaps."
                )
    if saved := st.session_state.get("live_saved"):
        st.success(saved)
    if error := st.session_state.get("live_save_error"):
        st.error(error)


_live_results()
