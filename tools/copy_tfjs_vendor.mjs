// Copy the TensorFlow.js browser bundles from node_modules into the offline audit component, so the
// app serves them itself (no CDN): skuaudit/web/offline_component/vendor/. Run by `npm ci`.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const vendor = path.join(root, "skuaudit", "web", "offline_component", "vendor");
const tfjsDist = path.dirname(require.resolve("@tensorflow/tfjs/dist/tf.min.js"));
const wasmDist = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm"));
const files = [
  [tfjsDist, "tf.min.js"],
  [wasmDist, "tf-backend-wasm.min.js"],
  [wasmDist, "tfjs-backend-wasm.wasm"],
  [wasmDist, "tfjs-backend-wasm-simd.wasm"],
  [wasmDist, "tfjs-backend-wasm-threaded-simd.wasm"],
];
fs.mkdirSync(vendor, { recursive: true });
for (const [dir, name] of files) fs.copyFileSync(path.join(dir, name), path.join(vendor, name));
console.log(`copied ${files.length} TensorFlow.js files to ${path.relative(root, vendor)}`);
