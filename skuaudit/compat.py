"""Every patch skuaudit applies to a library it depends on, in one place.

Each patch reaches into a library's internals at the version it was written for
(``WRITTEN_FOR``); when the installed version differs, ``check_version`` logs a warning once that
names the patch to re-check, and the patch is still applied (the tests that cover it say whether
it still holds):

- ``install_webrtc_fixes``: two races of streamlit-webrtc under Streamlit's fast reruns.
- ``use_loopback_ice_candidates``: aioice's host candidates limited to 127.0.0.1 (tests and
  single-machine demos).
- ``tensorflowjs_converter``: tensorflowjs imported without jax and TF Decision Forests
  (``sys.modules`` stand-ins) and its bias-add fusion made safe, under a lock, so two exports at
  once cannot interleave the patch.
- ``route_every_page_through_main_script``: Streamlit's "pages folder" mode switched off, so a
  page address opened on a freshly started server runs the router (``app.py``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# distribution name -> the version the patches on it were written (and tested) for
WRITTEN_FOR: dict[str, str] = {
    "streamlit": "1.67.0",
    "streamlit-webrtc": "0.79.0",
    "aioice": "0.13.0",
    "tensorflowjs": "4.22.0",
}
_warned: set[str] = set()


def check_version(package: str, patch: str) -> bool:
    """Whether ``package`` is installed at ``WRITTEN_FOR[package]``; logs a warning once if not.

    Args:
        package: the distribution name, e.g. ``"streamlit-webrtc"``.
        patch: the patch that relies on it, named in the warning.
    """
    expected = WRITTEN_FOR[package]
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        installed = "not installed"
    if installed == expected:
        return True
    if package not in _warned:
        _warned.add(package)
        log.warning(
            "%s was written for %s %s, but %s is installed: check that the patch still applies "
            "(skuaudit/compat.py and its tests)",
            patch,
            package,
            expected,
            installed,
        )
    return False


# --------------------------------------------------------------------------- Streamlit


def route_every_page_through_main_script() -> None:
    """Switch Streamlit's "pages folder" mode off for this server process.

    While a ``pages/`` folder sits beside the main script, Streamlit starts in its 1.x mode and,
    until some run has called ``st.navigation``, answers a request for ``/stockouts`` by running
    ``pages/stockouts.py`` alone (no router, no sidebar). ``PagesManager.uses_pages_directory``
    is the class-wide flag ``st.navigation`` itself clears.
    """
    from streamlit.runtime.pages_manager import PagesManager

    check_version("streamlit", "route_every_page_through_main_script")
    PagesManager.uses_pages_directory = False


# --------------------------------------------------------------------------- streamlit-webrtc

_completed_runs: dict[str, int] = {}
_completed_runs_lock = threading.Lock()
# Counts of sessions that ended are dropped when the table has grown by this many entries.
_PRUNE_EVERY = 64
_pruned_at = 0


def _prune_ended_sessions() -> None:
    """Drop the counts of sessions the runtime no longer has (call with the lock held)."""
    global _pruned_at
    if len(_completed_runs) < _pruned_at + _PRUNE_EVERY:
        return
    from streamlit.runtime import Runtime

    if Runtime.exists():
        runtime = Runtime.instance()
        for session_id in [s for s in _completed_runs if not runtime.is_active_session(s)]:
            del _completed_runs[session_id]
    _pruned_at = len(_completed_runs)


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
       Page switches are still detected: the other page's runs are counted. The counts of
       sessions that ended are dropped as new sessions come.
    """
    import streamlit_webrtc.component as webrtc_component
    from streamlit.runtime.scriptrunner import ScriptRunner, ScriptRunnerEvent

    if getattr(ScriptRunner._on_script_finished, "_skuaudit_counts_runs", False):
        return
    check_version("streamlit-webrtc", "install_webrtc_fixes")
    check_version("streamlit", "install_webrtc_fixes")
    original = ScriptRunner._on_script_finished

    @functools.wraps(original)
    def counting(self, ctx, event, premature_stop, *args, **kwargs):
        if event == ScriptRunnerEvent.SCRIPT_STOPPED_WITH_SUCCESS and not premature_stop:
            with _completed_runs_lock:
                if ctx.session_id not in _completed_runs:
                    _prune_ended_sessions()
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


# --------------------------------------------------------------------------- aioice


def _loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def use_loopback_ice_candidates() -> None:
    """Make aioice offer only 127.0.0.1 as host candidate (it leaves loopback out otherwise)."""
    import aioice.ice

    check_version("aioice", "use_loopback_ice_candidates")
    aioice.ice.get_host_addresses = _loopback_host_addresses


# --------------------------------------------------------------------------- tensorflowjs

# modules tensorflowjs imports at load time although conversion of a SavedModel never uses them
_TFJS_OPTIONAL_IMPORTS: tuple[str, ...] = (
    "jax",
    "jax.experimental",
    "jax.experimental.jax2tf",
    "tensorflow_decision_forests",
)
# Held while the stand-ins or the bias-add patch are in place: both change process-wide state.
_tfjs_lock = threading.RLock()


class TensorflowjsMissingError(ImportError):
    """tensorflowjs is not installed; the message says how to install it."""


def import_tensorflowjs() -> types.ModuleType:
    """Import ``tensorflowjs`` (installed with ``--no-deps``) without jax and TF Decision Forests.

    tensorflowjs 4.22 imports ``jax`` and ``tensorflow_decision_forests`` at import time but the
    SavedModel conversion uses neither. Empty stand-ins are registered only for modules that are
    really missing and removed again once tensorflowjs has loaded, so nothing else sees them.
    Keras is imported first so tensorflowjs binds to the real Keras 3.

    Raises:
        TensorflowjsMissingError: tensorflowjs is not installed.
    """
    with _tfjs_lock:
        if "tensorflowjs.converters" in sys.modules:
            return sys.modules["tensorflowjs"]
        check_version("tensorflowjs", "import_tensorflowjs")
        import keras  # noqa: F401

        stubs = []
        for name in _TFJS_OPTIONAL_IMPORTS:
            if name in sys.modules:
                continue
            parent, _, child = name.rpartition(".")
            if parent in stubs or importlib.util.find_spec(name) is None:
                module = types.ModuleType(name)
                sys.modules[name] = module
                if parent:
                    setattr(sys.modules[parent], child, module)
                stubs.append(name)
        try:
            import tensorflowjs
            import tensorflowjs.converters  # noqa: F401
        except ImportError as exc:
            raise TensorflowjsMissingError(
                f"TensorFlow.js export needs tensorflowjs ({exc}): "
                "pip install --no-deps tensorflowjs==4.22.0 tf-keras tensorflow-hub"
            ) from exc
        finally:
            for name in stubs:
                sys.modules.pop(name, None)
        return tensorflowjs


@contextmanager
def _safe_bias_add_normalisation() -> Iterator[None]:
    """Stop tensorflowjs 4.22 from fusing a feature-map ``Add`` into a conv as if it were a bias.

    Its ``normalize_bias_add_op`` turns *every* ``Add`` after a single-use ``Conv2D`` into
    ``BiasAdd``, without checking the other operand is a 1-D constant. In the FPN, the lateral
    ``Conv2D + Add(upsampled level)`` then becomes a ``_FusedConv2D`` whose "bias" is a whole feature
    map, and tfjs refuses to run it ("FusedConv2D only supports rank-1 bias"). During the
    conversion this wraps the pass so only ``Add`` nodes with a rank-1 constant operand are rewritten.
    """
    from tensorflowjs.converters import normalize_bias_add

    original = normalize_bias_add.normalize_bias_add_op

    def checked(graph_def):
        nodes = {node.name: node for node in graph_def.node}
        vetoed = []
        for node in graph_def.node:
            if node.op in ("Add", "AddV2"):
                other = nodes.get(node.input[1].split(":")[0].lstrip("^"))
                rank = (
                    len(other.attr["value"].tensor.tensor_shape.dim)
                    if other and other.op == "Const"
                    else None
                )
                if rank != 1:
                    vetoed.append((node, node.op))
                    node.op = "_SkuauditKeepAdd"
        result = original(graph_def)
        for node, op in vetoed:
            node.op = op
        return result

    normalize_bias_add.normalize_bias_add_op = checked
    try:
        yield
    finally:
        normalize_bias_add.normalize_bias_add_op = original


@contextmanager
def tensorflowjs_converter() -> Iterator[types.ModuleType]:
    """``tensorflowjs`` with the safe bias-add pass, for one conversion at a time.

    Example:
        >>> with tensorflowjs_converter() as tfjs:  # doctest: +SKIP
        ...     tfjs.converters.convert_tf_saved_model(saved_model_dir, out_dir)

    Raises:
        TensorflowjsMissingError: tensorflowjs is not installed.
    """
    with _tfjs_lock:
        tfjs = import_tensorflowjs()
        with _safe_bias_add_normalisation():
            yield tfjs
