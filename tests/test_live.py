"""LiveProcessor, smoothing, ICE settings and the streamlit-webrtc run-count fix, without a browser."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from skuaudit import compat, live
from skuaudit.detections import Detections
from skuaudit.live import (
    LiveProcessor,
    count_by_brand,
    count_by_product,
    ice_servers_from_env,
    roll_up,
    smooth_counts,
)
from skuaudit.metrics import ProductInfo

BRANDS = {1: "Acme", 2: "Brio"}


def _detections(n_acme: int, n_brio: int = 0, n_gaps: int = 0) -> Detections:
    n = n_acme + n_brio + n_gaps
    xyxy = np.array([[i * 10, 0, i * 10 + 8, 20] for i in range(n)], dtype=np.float32)
    class_id = [0] * (n_acme + n_brio) + [1] * n_gaps
    brand_id = [1] * n_acme + [2] * n_brio + [-1] * n_gaps
    return Detections(xyxy, class_id=class_id, data={"brand_id": np.array(brand_id)})


def _frame(value: int = 0, shape=(48, 64, 3)) -> np.ndarray:
    return np.full(shape, value, dtype=np.uint8)


@pytest.fixture
def make_processor():
    made: list[LiveProcessor] = []

    def make(analyse, **kwargs) -> LiveProcessor:
        proc = LiveProcessor(analyse, BRANDS, {1: (0, 255, 0)}, **kwargs)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.close()


# --------------------------------------------------------------------------- smoothing


@pytest.mark.parametrize(
    "history, expected",
    [
        ([], {}),
        ([{}], {}),
        ([{"a": 5}], {"a": 5}),
        # one bad frame in three does not move the median
        ([{"a": 5}, {"a": 0}, {"a": 5}], {"a": 5}),
        ([{"a": 5}, {"a": 40}, {"a": 5}], {"a": 5}),
        # a brand seen in a minority of frames is dropped (its median is 0)
        ([{"a": 5, "b": 2}, {"a": 5}, {"a": 5}], {"a": 5}),
        ([{"a": 5, "b": 2}, {"a": 5, "b": 2}, {"a": 5}], {"a": 5, "b": 2}),
        # even window: the lower median, a count that was actually seen
        ([{"a": 4}, {"a": 6}], {"a": 4}),
        ([{"a": 1}, {"a": 2}, {"a": 3}, {"a": 100}], {"a": 2}),
        ([{"a": 0}, {"a": 0}], {}),
    ],
)
def test_smooth_counts(history, expected):
    assert smooth_counts(history) == expected


@pytest.mark.parametrize(
    "detections, expected",
    [
        (Detections.empty(), {}),
        (_detections(2, 1, 3), {"Acme": 2, "Brio": 1}),
        (Detections(np.zeros((2, 4)), class_id=[0, 0]), {"unknown": 2}),
        (Detections(np.zeros((2, 4)), class_id=[0, 0], data={"brand_id": [9, -1]}), {"unknown": 2}),
    ],
)
def test_count_by_brand(detections, expected):
    assert count_by_brand(detections, BRANDS) == expected


PRODUCTS = {10: ProductInfo(1, "Cola"), 11: ProductInfo(1, "Lime"), 20: ProductInfo(2, "Cola")}


@pytest.mark.parametrize(
    "product_ids, brand_ids, expected",
    [
        ([], [], {}),
        (
            [10, 10, 11, 20],
            [1, 1, 1, 2],
            {("Acme", "Cola"): 2, ("Acme", "Lime"): 1, ("Brio", "Cola"): 1},
        ),
        # a recognised product names its brand; a brand alone is its "unknown product"
        (
            [10, -1, -1],
            [-1, 2, -1],
            {("Acme", "Cola"): 1, ("Brio", "unknown product"): 1, ("unknown", "unknown"): 1},
        ),
        ([99], [9], {("unknown", "unknown"): 1}),  # not in the catalogue (deleted meanwhile)
    ],
)
def test_count_by_product(product_ids, brand_ids, expected):
    n = len(product_ids)
    det = Detections(
        np.zeros((n + 1, 4)),
        class_id=[0] * n + [1],  # and a gap, never counted
        data={"product_id": np.array([*product_ids, -1]), "brand_id": np.array([*brand_ids, -1])},
    )
    counts = count_by_product(det, BRANDS, PRODUCTS)
    assert counts == expected
    assert roll_up(counts) == count_by_brand(
        det.with_data(
            brand_id=np.array(
                [
                    {10: 1, 11: 1, 20: 2}.get(p, b)
                    for p, b in zip([*product_ids, -1], [*brand_ids, -1], strict=True)
                ]
            )
        ),
        BRANDS,
    )


def test_processor_counts_products_and_sums_them_per_brand():
    frames = [(10, 10, 11, 20), (10, 10, 11, 20), (10, 11, 11, 20)]

    def detections(product_ids):
        n = len(product_ids)
        return Detections(
            np.array([[i * 10, 0, i * 10 + 8, 20] for i in range(n)], np.float32),
            class_id=[0] * n,
            data={"product_id": np.array(product_ids), "brand_id": np.full(n, -1)},
        )

    results = iter([detections(f) for f in frames])
    proc = LiveProcessor(lambda frame: next(results), BRANDS, products=PRODUCTS)
    try:
        for i in range(len(frames)):
            proc.process(_frame(i))
            assert proc.wait_processed(i + 1)
        state = proc.snapshot()
    finally:
        proc.close()
    # medians per product over the window, then summed per brand
    assert state.product_counts == {("Acme", "Cola"): 2, ("Acme", "Lime"): 1, ("Brio", "Cola"): 1}
    assert state.counts == {"Acme": 3, "Brio": 1} and state.products == 4


@pytest.mark.parametrize(
    "sequence, window, expected_counts, expected_gaps",
    [
        ([(3, 1, 0)], 5, {"Acme": 3, "Brio": 1}, 0),
        # a single glitch (nothing detected) inside the window changes nothing
        ([(3, 1, 2), (3, 1, 2), (0, 0, 0), (3, 1, 2), (3, 1, 2)], 5, {"Acme": 3, "Brio": 1}, 2),
        # a single over-count neither
        ([(3, 0, 1), (9, 4, 6), (3, 0, 1)], 3, {"Acme": 3}, 1),
        # older frames fall out of the window
        ([(9, 9, 9), (9, 9, 9), (2, 0, 0), (2, 0, 0), (2, 0, 0)], 3, {"Acme": 2}, 0),
    ],
)
def test_processor_smooths_over_window(
    make_processor, sequence, window, expected_counts, expected_gaps
):
    results = iter([_detections(*counts) for counts in sequence])
    proc = make_processor(lambda frame: next(results), window=window)
    for i in range(len(sequence)):
        proc.process(_frame(i))
        assert proc.wait_processed(i + 1)
    state = proc.snapshot()
    assert state.counts == expected_counts
    assert state.gaps == expected_gaps
    assert state.processed_frames == len(sequence)
    # the saved frame is one whose own counts equal the medians (newest such frame)
    assert count_by_brand(state.detections, BRANDS) == expected_counts
    last_match = max(
        i
        for i, counts in enumerate(sequence)
        if count_by_brand(_detections(*counts), BRANDS) == expected_counts
        and counts[2] == expected_gaps
    )
    assert int(state.frame_bgr[0, 0, 0]) == last_match


# --------------------------------------------------------------------------- threads


def test_process_returns_without_waiting_for_the_detector(make_processor):
    release = threading.Event()

    def slow(frame):
        release.wait(5)
        return _detections(1)

    proc = make_processor(slow)
    started = time.perf_counter()
    for i in range(20):
        out = proc.process(_frame(i))
        assert out.shape == (48, 64, 3)
    assert time.perf_counter() - started < 1.0
    release.set()
    assert proc.wait_processed(1)


def test_latency_is_the_windows_median_and_the_overlay_shows_the_snapshots(make_processor):
    """One slow frame does not make the latency jump, and the figure drawn on the video is the
    one the page's status line reads (they used to be two different frames' latencies)."""
    delays = iter([0.02, 0.4, 0.02])

    def analyse(frame):
        time.sleep(next(delays))
        return _detections(1)

    proc = make_processor(analyse, window=3)
    for i in range(3):
        proc.process(_frame(i))
        assert proc.wait_processed(i + 1)
    state = proc.snapshot()
    assert 20 <= state.latency_ms < 400  # the median, not the slow frame's 400 ms
    assert 20 <= state.last_latency_ms < 400  # the newest frame's own (benchmarks read it)
    assert proc._overlay_lines == live._overlay_text(state)


def test_stale_frames_are_dropped_not_queued(make_processor):
    seen: list[int] = []
    gate = threading.Event()

    def analyse(frame):
        seen.append(int(frame[0, 0, 0]))
        gate.wait(5)
        return Detections.empty()

    proc = make_processor(analyse)
    proc.process(_frame(0))
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.001)
    for i in range(1, 11):  # the detector is busy with frame 0 meanwhile
        proc.process(_frame(i))
    gate.set()
    assert proc.wait_processed(2)
    time.sleep(0.05)
    # frame 0, then straight to the newest one: frames 1..9 were never analysed
    assert seen == [0, 10]
    state = proc.snapshot()
    assert state.received_frames == 11
    assert state.dropped_frames == 9
    assert state.processed_frames == 2


def test_returned_frames_carry_the_latest_boxes(make_processor):
    proc = make_processor(lambda frame: _detections(1))
    proc.process(_frame(0))
    assert proc.wait_processed(1)
    out = proc.process(_frame(0))
    # the Acme box (green) is drawn at x 0..8, y 0..20 of a black frame
    assert tuple(out[10, 0]) == (0, 255, 0)
    # boxes follow a resolution change of the camera
    big = proc.process(_frame(0, (96, 128, 3)))
    assert tuple(big[20, 0]) == (0, 255, 0)


def test_concurrent_process_and_snapshot(make_processor):
    def analyse(frame):
        time.sleep(0.001)
        return _detections(int(frame[0, 0, 0]) % 3 + 1)

    proc = make_processor(analyse, window=5)
    errors: list[BaseException] = []
    stop = threading.Event()

    def feeder(offset: int) -> None:
        try:
            for i in range(300):
                proc.process(_frame((i + offset) % 250))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                state = proc.snapshot()
                assert state.dropped_frames <= state.received_frames
                assert state.processed_frames <= state.received_frames
                if state.frame_bgr is not None:
                    assert count_by_brand(state.detections, BRANDS).keys() <= {"Acme"}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=feeder, args=(k,)) for k in range(3)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads[:3]:
        t.join()
    # No more frames arrive, so nothing more is dropped: the worker still finishes the frame it is
    # analysing and the one left in the slot (two in flight at most), then every received frame
    # was either analysed or dropped.
    fed = proc.snapshot()
    assert proc.wait_processed(fed.received_frames - fed.dropped_frames)
    stop.set()
    threads[3].join()
    assert not errors, errors
    state = proc.snapshot()
    assert state.received_frames == 900
    assert state.received_frames - state.dropped_frames - state.processed_frames == 0


def test_worker_exits_when_idle_and_restarts(make_processor):
    proc = make_processor(lambda frame: Detections.empty(), idle_timeout_s=0.05)
    proc.process(_frame())
    assert proc.wait_processed(1)
    deadline = time.monotonic() + 2
    while proc._worker is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc._worker is None
    proc.process(_frame())
    assert proc.wait_processed(2)


def test_analysis_error_is_reported_and_stream_survives(make_processor):
    calls = iter([RuntimeError("model exploded"), _detections(2)])

    def analyse(frame):
        result = next(calls)
        if isinstance(result, Exception):
            raise result
        return result

    proc = make_processor(analyse)
    proc.process(_frame())
    deadline = time.monotonic() + 5
    while proc.snapshot().error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert "model exploded" in proc.snapshot().error
    proc.process(_frame())
    assert proc.wait_processed(1)
    state = proc.snapshot()
    assert state.error is None and state.counts == {"Acme": 2}


def test_reset_and_close(make_processor):
    proc = make_processor(lambda frame: _detections(1))
    proc.process(_frame())
    assert proc.wait_processed(1)
    proc.reset()
    state = proc.snapshot()
    assert (state.processed_frames, state.received_frames, state.counts, state.frame_bgr) == (
        0,
        0,
        {},
        None,
    )
    proc.close()
    with pytest.raises(RuntimeError, match="closed"):
        proc.process(_frame())


def _analysing_a_held_frame(make_processor):
    """A processor whose analyser has started on a frame and holds it (5 products) until the
    returned event is set: ``(processor, release)``."""
    started, release = threading.Event(), threading.Event()

    def slow(frame):
        started.set()
        release.wait(5)
        return _detections(5)

    proc = make_processor(slow)
    proc.process(_frame())
    assert started.wait(5)
    return proc, release


def test_set_analyser_drops_the_old_analysers_frame_in_flight(make_processor):
    proc, release = _analysing_a_held_frame(make_processor)
    proc.set_analyser(lambda frame: _detections(2, n_gaps=1))
    release.set()
    time.sleep(0.1)  # the old analyser's result lands now, and must be dropped
    assert proc.snapshot().processed_frames == 0
    proc.process(_frame())
    assert proc.wait_processed(1)
    state = proc.snapshot()
    assert (state.counts, state.gaps, state.processed_frames) == ({"Acme": 2}, 1, 1)


def test_reset_drops_a_frame_of_the_stream_before(make_processor):
    """A frame being analysed when a new audit starts belongs to the previous stream."""
    proc, release = _analysing_a_held_frame(make_processor)
    proc.reset()
    release.set()
    time.sleep(0.1)  # its result lands now, and must be dropped
    state = proc.snapshot()
    assert (state.processed_frames, state.counts, state.frame_bgr) == (0, {}, None)


def test_counts_and_snapshot_come_from_the_largest_frames_of_the_window(make_processor):
    """Frames the browser scaled down (fewer facings found, fewer brands named) are counted and
    saved only when no larger one is left, so the counts shown are the counts saved."""
    # a 640 px frame shows 5 facings, a 320 px frame of the same shelf 2
    proc = make_processor(lambda frame: _detections(5 if frame.shape[1] == 640 else 2), window=4)
    for i, shape in enumerate([(480, 640, 3), (240, 320, 3), (240, 320, 3)]):
        proc.process(_frame(i, shape))
        assert proc.wait_processed(i + 1)
    state = proc.snapshot()
    assert (state.frame_shape, state.counts, len(state.detections)) == ((480, 640), {"Acme": 5}, 5)
    assert proc.save_once(lambda s: 7)[1].counts == {"Acme": 5}
    for i in range(3, 6):  # the 640 px frame leaves the window of 4
        proc.process(_frame(i, (240, 320, 3)))
        assert proc.wait_processed(i + 1)
    state = proc.snapshot()
    assert (state.frame_shape, state.counts, len(state.detections)) == ((240, 320), {"Acme": 2}, 2)


def test_save_once_per_stream(make_processor):
    proc = make_processor(lambda frame: _detections(2, n_gaps=1))
    proc.process(_frame())
    assert proc.wait_processed(1)
    saved = []
    audit_id, state = proc.save_once(lambda s: saved.append(s) or 41)
    assert (audit_id, state.counts, proc.snapshot().saved_audit_id) == (41, {"Acme": 2}, 41)
    with pytest.raises(live.AlreadySavedError, match="saved already as audit 41"):
        proc.save_once(lambda s: 42)
    assert len(saved) == 1
    # a failed save marks nothing
    proc.reset()
    proc.process(_frame())
    assert proc.wait_processed(1)
    with pytest.raises(ValueError, match="database down"):
        proc.save_once(lambda s: (_ for _ in ()).throw(ValueError("database down")))
    assert proc.snapshot().saved_audit_id is None
    assert proc.save_once(lambda s: 43)[0] == 43


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="window"):
        LiveProcessor(lambda f: Detections.empty(), {}, window=0)


def test_callback_converts_video_frames(make_processor):
    import av

    proc = make_processor(lambda frame: Detections.empty())
    frame = av.VideoFrame.from_ndarray(_frame(7, (48, 64, 3)), format="bgr24")
    out = proc.callback(frame)
    assert out.width == 64 and out.height == 48
    assert proc.wait_processed(1)


# --------------------------------------------------------------------------- ICE settings


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, []),
        ({"SKUAUDIT_ICE_SERVERS": "  "}, []),
        ({"SKUAUDIT_ICE_SERVERS": "[]"}, []),
        (
            {"SKUAUDIT_ICE_SERVERS": '[{"urls": "stun:stun.example.org:3478"}]'},
            [{"urls": "stun:stun.example.org:3478"}],
        ),
        (
            {
                "SKUAUDIT_ICE_SERVERS": '[{"urls": ["turn:t.example:3478", "turns:t.example:5349"]}]',
                "SKUAUDIT_TURN_USERNAME": "u",
                "SKUAUDIT_TURN_CREDENTIAL": "secret",
            },
            [
                {
                    "urls": ["turn:t.example:3478", "turns:t.example:5349"],
                    "username": "u",
                    "credential": "secret",
                }
            ],
        ),
        # credentials in the entry win over the environment
        (
            {
                "SKUAUDIT_ICE_SERVERS": '[{"urls": "turn:t:3478", "username": "a", "credential": "b"}]',
                "SKUAUDIT_TURN_USERNAME": "u",
                "SKUAUDIT_TURN_CREDENTIAL": "secret",
            },
            [{"urls": "turn:t:3478", "username": "a", "credential": "b"}],
        ),
        # STUN entries get no credentials
        (
            {
                "SKUAUDIT_ICE_SERVERS": '[{"urls": "stun:s:3478"}]',
                "SKUAUDIT_TURN_USERNAME": "u",
                "SKUAUDIT_TURN_CREDENTIAL": "p",
            },
            [{"urls": "stun:s:3478"}],
        ),
    ],
)
def test_ice_servers_from_env(env, expected):
    assert ice_servers_from_env(env) == expected
    assert live.rtc_configuration(env) == {"iceServers": expected}


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SKUAUDIT_ICE_SERVERS": "[{urls: stun}]"}, "SKUAUDIT_ICE_SERVERS is not valid JSON: "),
        ({"SKUAUDIT_ICE_SERVERS": '{"urls": "stun:s"}'}, "must be a JSON list"),
        (
            {"SKUAUDIT_ICE_SERVERS": '["stun:s"]'},
            r'SKUAUDIT_ICE_SERVERS\[0\] must be an object with "urls"',
        ),
        ({"SKUAUDIT_ICE_SERVERS": '[{"urls": []}]'}, r'\[0\] must be an object with "urls"'),
        ({"SKUAUDIT_ICE_SERVERS": '[{"url": "stun:s"}]'}, r'\[0\] must be an object with "urls"'),
        (
            {"SKUAUDIT_ICE_SERVERS": '[{"urls": "stun:s"}, {"urls": "turn:t:3478"}]'},
            r"\[1\] \(turn:t:3478\) is a TURN server without credentials.*SKUAUDIT_TURN_USERNAME",
        ),
    ],
)
def test_invalid_ice_servers(env, message):
    with pytest.raises(ValueError, match=message):
        ice_servers_from_env(env)


def test_errors_do_not_echo_credentials():
    env = {"SKUAUDIT_ICE_SERVERS": '[{"urls": 5, "credential": "topsecret"}]'}
    with pytest.raises(ValueError) as info:
        ice_servers_from_env(env)
    assert "topsecret" not in str(info.value)


def test_loopback_only(monkeypatch):
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    live.apply_network_settings({})
    assert aioice.ice.get_host_addresses is not compat._loopback_host_addresses
    live.apply_network_settings({"SKUAUDIT_ICE_LOOPBACK_ONLY": "1"})
    assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]


# --------------------------------------------------------------------------- streamlit-webrtc fixes


def test_rerun_fix_counts_completed_runs_synchronously(monkeypatch):
    """streamlit-webrtc reads a count that grows as soon as a run ends normally, never otherwise."""
    import streamlit_webrtc.component as component
    from streamlit.runtime.scriptrunner import ScriptRunner, ScriptRunnerEvent

    finished = []

    def original(self, ctx, event, premature_stop, run_descriptor):
        finished.append(event)

    # Stand-ins, restored after the test, so the wrapper is installed on them alone.
    monkeypatch.setattr(ScriptRunner, "_on_script_finished", original)
    monkeypatch.setattr(component, "get_script_run_count", None)
    monkeypatch.setattr(component, "_reset_context", component._reset_context)
    compat.install_webrtc_fixes()
    compat.install_webrtc_fixes()  # idempotent: wrapped once
    assert component._reset_context is compat._reset_context_then_stop

    class Ctx:
        session_id = "session-under-test"

    class SessionInfo:
        class session:  # noqa: N801 - mimics ActiveSessionInfo.session
            id = "session-under-test"

    expected = 0
    for event, premature_stop, counted in [
        (ScriptRunnerEvent.SCRIPT_STOPPED_WITH_SUCCESS, False, True),
        (ScriptRunnerEvent.SCRIPT_STOPPED_WITH_SUCCESS, True, False),  # st.stop, stop for rerun
        (ScriptRunnerEvent.SCRIPT_STOPPED_FOR_RERUN, False, False),
        (ScriptRunnerEvent.FRAGMENT_STOPPED_WITH_SUCCESS, False, False),
        (ScriptRunnerEvent.SCRIPT_STOPPED_WITH_SUCCESS, False, True),
    ]:
        ScriptRunner._on_script_finished(None, Ctx, event, premature_stop, None)
        expected += counted
        # counted before the runner's own handling returns, i.e. before a next run can start
        assert component.get_script_run_count(SessionInfo) == expected
    assert len(finished) == 5


@pytest.mark.parametrize("newer", ["state", "worker"])
def test_reset_keeps_what_a_newer_run_stored_while_the_worker_stops(newer):
    """A START handled while the STOP run waits in ``worker.stop()`` must survive that reset."""
    from streamlit_webrtc.component import WebRtcStreamerContext, WebRtcStreamerState

    signalling = WebRtcStreamerState(playing=False, signalling=True)
    context = WebRtcStreamerContext(worker=None, state=WebRtcStreamerState(False, False))

    class Worker:
        stopped = False

        def stop(self):
            # what the overlapping run does meanwhile: its on_change, or its new worker
            assert context._get_worker() is None, "the worker must be detached before stopping"
            if newer == "state":
                context._set_state(signalling)
            else:
                context._set_worker(new_worker)
            self.stopped = True

    old_worker, new_worker = Worker(), Worker()
    context._set_worker(old_worker)
    context._sdp_answer_json = "{}"
    compat._reset_context_then_stop(context)

    assert old_worker.stopped
    assert context._sdp_answer_json is None
    if newer == "state":
        assert context.state == signalling
    else:
        assert context._get_worker() is new_worker and not new_worker.stopped
