// The counting rules of skuaudit.detector.Detector.detect, for TF.js runtimes (browser and Node).
//
// The exported graphs return boxes after per-class NMS at one score threshold; an audit counts
// only boxes above the class's own default threshold and applies the nested-box rules of
// skuaudit.detector.postprocess.suppress_contained. This file repeats those two steps so that an
// offline audit in the browser counts what a photo audit on the server counts:
//
//   1. a box is kept when its score reaches class_score_thresholds[class];
//   2. stack boxes: a box holding at least stack_min_contained higher-scored boxes of its class
//      (each with `containment` of its area inside it) is dropped (0 turns this off);
//   3. contained boxes: with drop_contained, a box with `containment` of its area inside a
//      higher-scored box of its class that rule 2 kept is dropped;
//   4. empty stretches (skuaudit.detector.postprocess.suppress_inside_empty): a box of another
//      class with `containment` of its area inside a higher-scored kept box of one of
//      empty_class_ids (e.g. the gap class) is dropped.
//
// The rules only ever drop a box for higher-scored ones, so the threshold of step 1 may come
// before them (as here) or after (as in Python) with the same result. The containment ratio is an
// area ratio, so boxes may be in pixels or normalised coordinates alike.
//
// Loaded as a plain <script> in the browser (global `skuauditCounting`) and with require() in
// Node (tools/tfjs_infer.mjs). tests/test_export.py checks it against the Python rules.
(function (root) {
  "use strict";

  // Indices of the boxes an audit counts, in input order.
  //   boxes: flat [a1, b1, a2, b2, ...] corners (yxyx or xyxy, 4 numbers a box)
  //   scores, classes: one per box
  //   rules: {class_score_thresholds: [per class id], containment, stack_min_contained,
  //           drop_contained, empty_class_ids (optional: [] or missing turns rule 4 off)}
  function countedIndices(boxes, scores, classes, rules) {
    const thresholds = rules.class_score_thresholds;
    const idx = [];
    for (let i = 0; i < scores.length; i++) {
      const t = thresholds[classes[i]];
      if (t !== undefined && scores[i] >= t) idx.push(i);
    }
    const m = idx.length;
    const corner = (k, c) => boxes[4 * idx[k] + c];
    const area = idx.map((_, k) =>
      Math.max((corner(k, 2) - corner(k, 0)) * (corner(k, 3) - corner(k, 1)), 1e-12));
    // within(a, b): box b lies mostly inside box a; inside(a, b): the same, same class.
    const within = (a, b) => {
      const d0 = Math.min(corner(a, 2), corner(b, 2)) - Math.max(corner(a, 0), corner(b, 0));
      const d1 = Math.min(corner(a, 3), corner(b, 3)) - Math.max(corner(a, 1), corner(b, 1));
      return (Math.max(d0, 0) * Math.max(d1, 0)) / area[b] >= rules.containment;
    };
    const inside = (a, b) => a !== b && classes[idx[a]] === classes[idx[b]] && within(a, b);
    const scoreOf = (k) => scores[idx[k]];
    const keep = new Array(m).fill(true);
    if (rules.stack_min_contained > 0) {
      for (let a = 0; a < m; a++) {
        let held = 0;
        for (let b = 0; b < m; b++) if (scoreOf(a) < scoreOf(b) && inside(a, b)) held++;
        if (held >= rules.stack_min_contained) keep[a] = false;
      }
    }
    if (rules.drop_contained) {
      const afterStacks = keep.slice();
      for (let b = 0; b < m; b++) {
        for (let a = 0; a < m; a++) {
          if (afterStacks[a] && scoreOf(b) < scoreOf(a) && inside(a, b)) {
            keep[b] = false;
            break;
          }
        }
      }
    }
    const emptyIds = rules.empty_class_ids || [];
    if (emptyIds.length) {
      const marks = (k) => emptyIds.includes(classes[idx[k]]);
      const afterNested = keep.slice();
      for (let b = 0; b < m; b++) {
        if (!afterNested[b] || marks(b)) continue;
        for (let a = 0; a < m; a++) {
          if (afterNested[a] && marks(a) && scoreOf(b) < scoreOf(a) && within(a, b)) {
            keep[b] = false;
            break;
          }
        }
      }
    }
    return idx.filter((_, k) => keep[k]);
  }

  // {class name: count} of the counted boxes.
  function countByClass(indices, classes, classNames) {
    const counts = Object.fromEntries(classNames.map((name) => [name, 0]));
    for (const i of indices) counts[classNames[classes[i]]] += 1;
    return counts;
  }

  const api = { countedIndices, countByClass };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.skuauditCounting = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
