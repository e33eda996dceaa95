"""The stack as the app uses it: streamlit_webrtc first, then TensorFlow, both exercised."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_webrtc_then_tensorflow_in_app_order():
    # A fresh interpreter, so the order is exactly the app's and a segfault shows as a bad exit code.
    code = textwrap.dedent(
        """
        import streamlit_webrtc
        import av
        import numpy as np
        import tensorflow as tf

        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
        assert frame.to_ndarray(format="bgr24").shape == (48, 64, 3)
        assert streamlit_webrtc.RTCConfiguration({"iceServers": []})["iceServers"] == []
        f = tf.function(lambda x: tf.reduce_sum(x * 2.0))
        assert float(f(tf.ones((4, 4)))) == 32.0
        print("ok", tf.__version__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok 2.")
