// Run an exported skuaudit TF.js graph model under Node on one input, print JSON.
//
//   node tools/tfjs_infer.mjs --model DIR --input image.f32 [--score-threshold 0.3]
//        [--backend wasm|cpu] [--repeat 1] [--out result.json]
//
// --input is raw little-endian float32 RGB 0..255 of the model input shape (1, S, S, 3).
// Plain @tensorflow/tfjs has no file:// loader in Node, so a small IO handler reads model.json and
// its weight shards. Input and output tensor names come from the model's export.json (the converter
// renames outputs to Identity:0, ...). Output: {"backend", "outputs": {key: {"shape", "data"}},
// "counting": {"indices", "counts"}, "timings_ms": [...], "median_ms"}; timings cover executeAsync
// plus reading the outputs back. "counting" applies export.json's per-class thresholds and
// nested-box rules with the browser's own skuaudit/web/offline_component/counting.js; the default
// graph threshold is the lowest class threshold, so nothing a class would count is cut before.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";

const countingRules = createRequire(import.meta.url)(
  "../skuaudit/web/offline_component/counting.js");

function parseArgs(argv) {
  const args = { backend: "wasm", repeat: 1, scoreThreshold: null, out: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value for ${key}`);
    if (key === "--model") args.model = value;
    else if (key === "--input") args.input = value;
    else if (key === "--backend") args.backend = value;
    else if (key === "--repeat") args.repeat = Number.parseInt(value, 10);
    else if (key === "--score-threshold") args.scoreThreshold = Number.parseFloat(value);
    else if (key === "--out") args.out = value;
    else throw new Error(`unknown option ${key}`);
  }
  if (!args.model || !args.input) throw new Error("--model and --input are required");
  if (!["wasm", "cpu"].includes(args.backend)) throw new Error("--backend must be wasm or cpu");
  return args;
}

function fileHandler(modelDir) {
  return {
    async load() {
      const modelJson = JSON.parse(fs.readFileSync(path.join(modelDir, "model.json"), "utf8"));
      const weightSpecs = [];
      const buffers = [];
      for (const group of modelJson.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const shard of group.paths) buffers.push(fs.readFileSync(path.join(modelDir, shard)));
      }
      const joined = Buffer.concat(buffers);
      return {
        modelTopology: modelJson.modelTopology,
        format: modelJson.format,
        generatedBy: modelJson.generatedBy,
        convertedBy: modelJson.convertedBy,
        signature: modelJson.signature,
        userDefinedMetadata: modelJson.userDefinedMetadata,
        weightSpecs,
        weightData: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength),
      };
    },
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.backend === "wasm") {
    const require = createRequire(import.meta.url);
    const wasmDir = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"));
    setWasmPaths(wasmDir + path.sep);
  }
  await tf.setBackend(args.backend);
  await tf.ready();
  const info = JSON.parse(fs.readFileSync(path.join(args.model, "export.json"), "utf8"));
  const model = await tf.loadGraphModel(fileHandler(args.model));
  const size = info.image_size;
  const bytes = fs.readFileSync(args.input);
  const pixels = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  if (pixels.length !== size * size * 3) {
    throw new Error(`input has ${pixels.length} floats, the model expects 1x${size}x${size}x3`);
  }
  const counting = info.counting;
  const threshold =
    args.scoreThreshold ?? (counting ? Math.min(...counting.class_score_thresholds) : info.score_threshold);
  const image = tf.tensor4d(pixels, [1, size, size, 3]);
  const scoreThreshold = tf.scalar(threshold, "float32");
  const feeds = { [info.inputs.image]: image, [info.inputs.score_threshold]: scoreThreshold };
  const keys = Object.keys(info.outputs);
  const names = keys.map((k) => info.outputs[k]);
  const timings = [];
  let outputs = null;
  for (let i = 0; i < Math.max(1, args.repeat); i++) {
    const start = performance.now();
    const tensors = await model.executeAsync(feeds, names);
    const values = await Promise.all(tensors.map((t) => t.data()));
    timings.push(performance.now() - start);
    outputs = {};
    keys.forEach((k, j) => {
      outputs[k] = { shape: tensors[j].shape, data: Array.from(values[j]) };
    });
    tf.dispose(tensors);
  }
  const sorted = [...timings].sort((a, b) => a - b);
  let counted = null;
  if (counting) {
    const classes = outputs.classes.data;
    const indices = countingRules.countedIndices(
      outputs.boxes_yxyx_norm.data, outputs.scores.data, classes, counting);
    counted = { indices, counts: countingRules.countByClass(indices, classes, info.class_names) };
  }
  const result = {
    backend: tf.getBackend(),
    score_threshold: threshold,
    outputs,
    counting: counted,
    timings_ms: timings,
    median_ms: sorted[Math.floor(sorted.length / 2)],
  };
  const text = JSON.stringify(result);
  if (args.out) fs.writeFileSync(args.out, text);
  else process.stdout.write(text + "\n");
}

main().catch((err) => {
  process.stderr.write(`tfjs_infer: ${err.message}\n`);
  process.exit(2);
});
