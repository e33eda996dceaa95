// Offline shelf audit: the detector runs in this page with TensorFlow.js; no video leaves the phone.
// Only the counts go back to the app, through the Streamlit component protocol (postMessage).
//
// Render args: model_url (model.json, relative to this page), inputs / outputs (tensor names from
// the export's export.json), image_size, class_names, score_threshold (the graph's, the lowest
// class threshold), counting (export.json's per-class thresholds and nested-box rules, applied by
// counting.js) and test_image_url (a test hook: audit this picture instead of the camera).
"use strict";

const send = (type, data) => window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
const statusEl = document.getElementById("status");
const sendButton = document.getElementById("send");
const overlay = document.getElementById("overlay");
const state = { started: false, latest: null, frames: 0, totalMs: 0, backend: null };

function setHeight() {
  send("streamlit:setFrameHeight", { height: document.body.scrollHeight + 10 });
}

async function pickBackend() {
  tf.wasm.setWasmPaths(new URL("vendor/", window.location.href).href);
  for (const name of ["wasm", "webgl", "cpu"]) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch (err) {
      console.warn(`TF.js backend ${name} unavailable: ${err}`);
    }
  }
  throw new Error("no TensorFlow.js backend works in this browser");
}

async function openSource(args) {
  if (args.test_image_url) {
    const img = document.getElementById("still");
    img.hidden = false;
    img.src = args.test_image_url;
    await img.decode();
    return { element: img, width: img.naturalWidth, height: img.naturalHeight };
  }
  const video = document.getElementById("video");
  video.hidden = false;
  video.srcObject = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: "environment", width: { ideal: 1280 } },
    audio: false,
  });
  await video.play();
  return { element: video, width: video.videoWidth, height: video.videoHeight };
}

function drawBoxes(boxes, classes, indices, source) {
  overlay.width = source.width;
  overlay.height = source.height;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  ctx.lineWidth = Math.max(2, source.width / 320);
  for (const i of indices) {
    const [y1, x1, y2, x2] = boxes.slice(i * 4, i * 4 + 4);
    ctx.strokeStyle = classes[i] === 0 ? "#3cc83c" : "#e62828";
    ctx.strokeRect(x1 * source.width, y1 * source.height, (x2 - x1) * source.width, (y2 - y1) * source.height);
  }
}

async function detectOnce(model, args, source, input) {
  const size = args.image_size;
  const ctx = input.getContext("2d");
  ctx.drawImage(source.element, 0, 0, size, size);
  const start = performance.now();
  const image = tf.tidy(() => tf.browser.fromPixels(input).toFloat().expandDims(0));
  const threshold = tf.scalar(args.score_threshold, "float32");
  const names = [args.outputs.boxes_yxyx_norm, args.outputs.scores, args.outputs.classes];
  const outputs = await model.executeAsync({ [args.inputs.image]: image, [args.inputs.score_threshold]: threshold }, names);
  const [boxes, scores, classes] = await Promise.all(outputs.map((t) => t.data()));
  tf.dispose([image, threshold, ...outputs]);
  state.totalMs += performance.now() - start;
  state.frames += 1;
  // Count what a photo audit counts: per-class thresholds and nested-box rules (counting.js).
  const kept = skuauditCounting.countedIndices(boxes, scores, classes, args.counting);
  drawBoxes(boxes, classes, kept, source);
  return skuauditCounting.countByClass(kept, classes, args.class_names);
}

async function start(args) {
  state.started = true;
  try {
    state.backend = await pickBackend();
    const model = await tf.loadGraphModel(new URL(args.model_url, window.location.href).href);
    const source = await openSource(args);
    const input = document.createElement("canvas");
    input.width = input.height = args.image_size;
    sendButton.disabled = false;
    setHeight();
    const loop = async () => {
      state.latest = await detectOnce(model, args, source, input);
      const plural = { product: "products", gap: "gaps" };
      const parts = Object.entries(state.latest)
        .map(([k, v]) => `${v} ${v === 1 ? k : plural[k] || k}`)
        .join(", ");
      statusEl.textContent = `${parts} (${state.backend}, ${(state.totalMs / state.frames).toFixed(0)} ms per frame)`;
      if (args.test_image_url && args.auto_send && state.frames === 3) report();
      requestAnimationFrame(loop);
    };
    loop();
  } catch (err) {
    statusEl.textContent = `Offline audit unavailable: ${err.message || err}`;
    send("streamlit:setComponentValue", { value: { error: String(err.message || err) }, dataType: "json" });
    setHeight();
  }
}

function report() {
  if (!state.latest) return;
  send("streamlit:setComponentValue", {
    value: {
      counts: state.latest,
      frames: state.frames,
      backend: state.backend,
      ms_per_frame: state.totalMs / state.frames,
      sent_at: Date.now(), // a new report, even with the same counts: the page may save it once
    },
    dataType: "json",
  });
}

sendButton.addEventListener("click", report);
window.addEventListener("message", (event) => {
  if (event.data && event.data.type === "streamlit:render" && !state.started) start(event.data.args);
});
send("streamlit:componentReady", { apiVersion: 1 });
setHeight();
