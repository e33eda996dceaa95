"""Train the brand embedding model shipped in ``models/recognition`` and measure it.

Data: invented brands from ``skuaudit.datasets.synth``. Training brands come from one catalogue
seed; the threshold is chosen on a second (validation) catalogue and every reported figure is
measured on a third one that training never saw, the way a new brand arrives in the app:

- crops of ``render_product`` facings (all families, variants and sizes of each brand), put through
  crop jitter, perspective, rotation, blur, lighting, noise, JPEG and occluder augmentation;
- crops of product boxes from full ``render_shelf`` photos (camera effects included), each box
  edge moved by up to 10% of the box size, as a detector's boxes are.

Real photos (optional; read from disk, never shipped):

- ``--real-shelves DIR ...``: shelf photos with product boxes (``DIR/images/*.jpg`` and YOLO boxes
  with a score column in ``DIR/teacher/*.txt``, e.g. ``../shared/data/shelf-photos``). Neighbouring
  facings of a run on a shelf (same row, same height, touching, similar colours) are very often
  the same product: each run becomes one class (free positives); every other crop is a negative.
- ``--products DIR``: one folder of photos per product (e.g. ``../shared/data/products/train``);
  the centre of each photo (where the product is), cropped with jitter and augmented.

Model: a small CNN (64x64 RGB input, 64-D L2-normalised output) trained with a large-margin cosine
loss against learned class proxies (CosFace), a proxy-based metric-learning loss; proxies are
dropped after training, so recognition is nearest neighbour to enrolled references.
``--init model.keras`` starts from earlier weights (fine-tuning).

Usage (about 13 minutes on 2 shared CPU cores for the generated data alone)::

    nice -n 5 .venv/bin/python scripts/train_recognition.py --out models/recognition

The shipped model (``models/recognition/MODEL_CARD.md``) is that model fine-tuned on real photos::

    nice -n 5 .venv/bin/python scripts/train_recognition.py --out models/recognition \
        --init models/recognition/model.keras --minutes 30 --lr 1e-3 --brands 500 --per-brand 12 \
        --shelves 60 --real-shelves ../shared/data/shelf-photos ../shared/data/shelf-gaps \
        --products ../shared/data/products/train
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import cv2
import numpy as np

from skuaudit.datasets.synth import BrandCatalogue, make_catalogue, render_product, render_shelf
from skuaudit.detections import PRODUCT
from skuaudit.images import crop_xyxy
from skuaudit.recognition import preprocess_crops
from skuaudit.recognition_eval import DEFAULT_CENTRE, centre_box, read_product_folders
from skuaudit.sku_matching import colour_histogram

INPUT_SIZE = 64
POOL_SIZE = 72  # stored crops are a bit larger than the input: random crops add box jitter
EMBEDDING_DIM = 64
TRAIN_SEED, VAL_SEED, TEST_SEED = 1001, 2002, 3003
BOX_JITTER = 0.1  # fraction of the box size each edge of a shelf crop moves: detector-like boxes
# width / height of a facing per family, a little wider than on generated shelves
ASPECT_RANGE: dict[str, tuple[float, float]] = {
    "box": (0.5, 1.4),
    "bottle": (0.24, 0.45),
    "can": (0.45, 0.72),
    "pouch": (0.55, 0.95),
    "jar": (0.6, 1.05),
}


# --------------------------------------------------------------------------- data


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A detector-like, camera-like version of one facing crop (BGR uint8, any size)."""
    h, w = crop.shape[:2]
    if rng.random() < 0.7:  # box jitter: the detector's box is never exact
        pad = int(max(h, w) * 0.15) + 1
        padded = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x1 = pad + int(rng.uniform(-0.1, 0.1) * w)
        y1 = pad + int(rng.uniform(-0.08, 0.08) * h)
        x2 = pad + w + int(rng.uniform(-0.1, 0.1) * w)
        y2 = pad + h + int(rng.uniform(-0.08, 0.08) * h)
        crop = padded[max(y1, 0) : max(y2, y1 + 4), max(x1, 0) : max(x2, x1 + 4)]
        h, w = crop.shape[:2]
    if rng.random() < 0.5:  # perspective and small rotation
        d = 0.08 * np.array([w, h])
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        dst = (src + rng.uniform(-1, 1, (4, 2)) * d).astype(np.float32)
        crop = cv2.warpPerspective(
            crop, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE
        )
    if rng.random() < 0.3:  # occluder: a clip strip or a price label over part of the pack
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            x = int(rng.uniform(0, w))
            cv2.rectangle(
                crop, (x, 0), (x + max(2, w // 8), int(h * rng.uniform(0.2, 0.6))), colour, -1
            )
        else:
            y = int(h * rng.uniform(0.75, 1.0))
            cv2.rectangle(crop, (0, y), (int(w * rng.uniform(0.3, 0.9)), h), colour, -1)
    out = crop.astype(np.float32)
    gain = rng.uniform(0.55, 1.3) * (1 + rng.uniform(-0.1, 0.1, 3))
    ramp = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2), w, dtype=np.float32)
    out = out * gain * (ramp[None, :, None] if rng.random() < 0.5 else 1.0)
    out += rng.normal(0, rng.uniform(0, 8), out.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:  # low resolution: a far-away facing
        f = rng.uniform(0.3, 0.7)
        small = cv2.resize(
            out, (max(2, int(w * f)), max(2, int(h * f))), interpolation=cv2.INTER_AREA
        )
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(30, 95))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out


def product_crop(
    catalogue: BrandCatalogue, index: int, rng: np.random.Generator, aug: bool = True
) -> np.ndarray:
    """One facing of brand ``index`` in a random family, variant and size."""
    brand = catalogue.brands[index]
    family = brand.families[int(rng.integers(len(brand.families)))]
    lo, hi = ASPECT_RANGE[family]
    height = int(rng.uniform(30, 180))
    width = max(8, int(height * rng.uniform(lo, hi)))
    crop = render_product(
        brand, family, width, height, rng, variant=int(rng.integers(brand.n_variants))
    )
    return augment(crop, rng) if aug else crop


def shelf_crops(
    catalogue: BrandCatalogue, seeds: range, jitter: float = BOX_JITTER
) -> tuple[list[np.ndarray], list[int]]:
    """Product crops (with their brand index) cut from rendered shelves stocked from ``catalogue``.

    Each box edge moves by up to ``jitter`` of the box size, as a detector's boxes do.
    """
    index_of = {name: i for i, name in enumerate(catalogue.names)}
    rng = np.random.default_rng(seeds.start)
    crops, labels = [], []
    for seed in seeds:
        shelf = render_shelf(seed, catalogue=catalogue)
        for box, cls, brand in zip(shelf.boxes_xyxy, shelf.class_ids, shelf.brands, strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            box = box + rng.uniform(-jitter, jitter, 4) * np.array([w, h, w, h])
            crop = crop_xyxy(shelf.image_bgr, box)
            if cls == PRODUCT and min(crop.shape[:2]) >= 4:
                crops.append(crop)
                labels.append(index_of[brand])
    return crops, labels


def training_pool(
    n_brands: int, per_brand: int, n_shelves: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, POOL, POOL, 3) uint8 RGB, labels (N,))`` for the training catalogue."""
    catalogue = make_catalogue(n_brands, TRAIN_SEED)
    rng = np.random.default_rng(seed)
    crops = [product_crop(catalogue, b, rng) for b in range(n_brands) for _ in range(per_brand)]
    labels = [b for b in range(n_brands) for _ in range(per_brand)]
    s_crops, s_labels = shelf_crops(catalogue, range(10_000, 10_000 + n_shelves))
    images = preprocess_crops(crops + s_crops, POOL_SIZE).astype(np.uint8)
    return images, np.array(labels + s_labels, dtype=np.int32)


TEACHER_MIN_SCORE = 0.25  # the teacher's boxes at this score are products (data README)
RUN_MIN_COLOUR_SIM = 0.85  # Bhattacharyya coefficient of neighbours' colour histograms
RUN_MAX_MEMBERS = 8
PRODUCT_CROPS_PER_PHOTO = 16


def _teacher_boxes(path: Path, width: int, height: int) -> np.ndarray:
    rows = np.loadtxt(path, ndmin=2) if path.stat().st_size else np.zeros((0, 6))
    if rows.size == 0 or rows.shape[1] < 6:
        return np.zeros((0, 4), np.float32)
    rows = rows[rows[:, 5] >= TEACHER_MIN_SCORE]
    cx, cy = rows[:, 1] * width, rows[:, 2] * height
    bw, bh = rows[:, 3] * width, rows[:, 4] * height
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).astype(np.float32)


def shelf_runs(image: np.ndarray, boxes: np.ndarray) -> tuple[list[list[int]], list[np.ndarray]]:
    """Runs of neighbouring facings that look alike (index lists, 2+ members) and every crop.

    Two boxes join when the second is the nearest box to the right of the first in the same row
    (vertical overlap >= 60 %, heights within 25 %, gap under half a width) and their colour
    histograms agree (``RUN_MIN_COLOUR_SIM``).
    """
    crops = [crop_xyxy(image, b) for b in boxes]
    usable = np.array([min(c.shape[:2]) >= 12 for c in crops], bool)
    hist = np.stack([colour_histogram(c) for c in crops]) if crops else np.zeros((0, 1))
    parent = list(range(len(boxes)))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    for i in np.flatnonzero(usable):
        overlap = np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1])
        gap = boxes[:, 0] - boxes[i, 2]
        near = (
            usable
            & (overlap >= 0.6 * np.maximum(h[i], h))
            & (h / h[i] > 0.8)
            & (h / h[i] < 1.25)
            & (gap > -0.3 * w[i])
            & (gap < 0.5 * w[i])
            & (boxes[:, 0] > boxes[i, 0])
        )
        candidates = np.flatnonzero(near)
        if len(candidates):
            j = candidates[np.argmin(boxes[candidates, 0])]
            if hist[i] @ hist[j] >= RUN_MIN_COLOUR_SIM:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in np.flatnonzero(usable):
        groups.setdefault(root(int(i)), []).append(int(i))
    return [g[:RUN_MAX_MEMBERS] for g in groups.values() if len(g) >= 2], crops


def real_shelf_pool(folders: list[Path], first_label: int, log) -> tuple[np.ndarray, np.ndarray]:
    """Crops of runs of look-alike neighbours on real shelf photos; one class per run."""
    images, labels, label = [], [], first_label
    for folder in folders:
        photos = sorted(glob.glob(str(folder / "images" / "*.jpg")))
        for photo in photos:
            boxes_file = folder / "teacher" / (Path(photo).stem + ".txt")
            if not boxes_file.is_file():
                continue
            image = cv2.imread(photo)
            boxes = _teacher_boxes(boxes_file, image.shape[1], image.shape[0])
            runs, crops = shelf_runs(image, boxes)
            for run in runs:
                images.append(preprocess_crops([crops[i] for i in run], POOL_SIZE).astype(np.uint8))
                labels += [label] * len(run)
                label += 1
        log(f"real shelves {folder}: {len(photos)} photos, {label - first_label} runs so far")
    if not images:
        return np.zeros((0, POOL_SIZE, POOL_SIZE, 3), np.uint8), np.zeros(0, np.int32)
    return np.concatenate(images), np.array(labels, np.int32)


def product_photo_pool(
    folder: Path, first_label: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Augmented, jittered centre crops of product photos; one class per product folder."""
    photos = read_product_folders(folder, role="products")
    crops, labels = [], []
    for p, images in enumerate(photos.images):
        for image in images:
            h, w = image.shape[:2]
            base = centre_box(image, DEFAULT_CENTRE)
            for _ in range(PRODUCT_CROPS_PER_PHOTO):
                scale = rng.uniform(0.8, 1.15)
                cx = (base[0] + base[2]) / 2 + rng.uniform(-0.08, 0.08) * w
                cy = (base[1] + base[3]) / 2 + rng.uniform(-0.06, 0.06) * h
                bw, bh = (base[2] - base[0]) * scale, (base[3] - base[1]) * scale
                box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
                crops.append(augment(crop_xyxy(image, box).copy(), rng))
                labels.append(first_label + p)
    images = preprocess_crops(crops, POOL_SIZE).astype(np.uint8)
    return images, np.array(labels, np.int32)


# --------------------------------------------------------------------------- model


def build_embedding_model():
    """64x64 RGB (0..255) -> 64-D unit vector; ~0.3 M parameters."""
    import keras
    from keras import layers

    def block(x, filters: int, stride: int = 1):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="crop_rgb")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = block(x, 32, 2)
    x = block(x, 32)
    x = layers.MaxPooling2D()(x)
    x = block(x, 64)
    x = block(x, 64)
    x = layers.MaxPooling2D()(x)
    x = block(x, 128)
    x = block(x, 128)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dense(EMBEDDING_DIM)(x)
    outputs = layers.UnitNormalization(name="embedding")(x)
    return keras.Model(inputs, outputs, name="brand_embedding")


def train(
    model,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    minutes: float,
    batch: int,
    log,
    base_lr: float = 3e-3,
) -> dict:
    """CosFace training against learned proxies, until ``minutes`` have passed."""
    import tensorflow as tf

    n_classes = int(labels.max()) + 1
    proxies = tf.Variable(tf.random.normal((EMBEDDING_DIM, n_classes), stddev=0.1), name="proxies")
    scale, margin = 20.0, 0.25
    total_steps = int(minutes * 60 * 8)  # refined from the measured speed after 60 and 200 steps
    optimizer = tf.keras.optimizers.Adam(base_lr)

    @tf.function
    def jitter(batch_u8):
        x = tf.cast(batch_u8, tf.float32)
        n = tf.shape(x)[0]
        size = tf.random.uniform((n, 1), 0.82, 1.0)
        y1 = tf.random.uniform((n, 1)) * (1 - size)
        x1 = tf.random.uniform((n, 1)) * (1 - size)
        aspect = tf.random.uniform((n, 1), 0.9, 1.1)
        boxes = tf.concat([y1, x1, y1 + size, x1 + tf.minimum(size * aspect, 1 - x1)], axis=1)
        x = tf.image.crop_and_resize(x, boxes, tf.range(n), (INPUT_SIZE, INPUT_SIZE))
        x = x * tf.random.uniform((n, 1, 1, 1), 0.8, 1.2) + tf.random.uniform((n, 1, 1, 1), -20, 20)
        grey = tf.reduce_mean(x, axis=-1, keepdims=True)
        x = grey + (x - grey) * tf.random.uniform((n, 1, 1, 1), 0.7, 1.3)
        return tf.clip_by_value(x, 0, 255)

    @tf.function
    def step(batch_u8, batch_labels):
        x = jitter(batch_u8)
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            cos = tf.matmul(emb, tf.math.l2_normalize(proxies, axis=0))
            logits = scale * (cos - margin * tf.one_hot(batch_labels, n_classes))
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(batch_labels, logits)
            )
        variables = model.trainable_variables + [proxies]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    steps, losses, warm_start = 0, [], start
    while True:
        order = rng.permutation(len(images))
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            progress = min(steps / total_steps, 1.0)
            optimizer.learning_rate.assign(
                base_lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * progress)))
            )
            losses.append(float(step(images[idx], labels[idx])))
            steps += 1
            elapsed = time.perf_counter() - start
            if steps == 20:  # the first steps include tracing: time the rest
                warm_start = time.perf_counter()
            elif steps in (60, 200):  # fit the cosine schedule to the time budget
                per_step = (time.perf_counter() - warm_start) / (steps - 20)
                total_steps = max(100, steps + int((minutes * 60 - elapsed) / per_step))
            if steps % 100 == 0:
                log(
                    f"step {steps}/{total_steps} loss {np.mean(losses[-100:]):.3f} "
                    f"{elapsed / 60:.1f} min"
                )
            if steps >= total_steps or elapsed > minutes * 60:
                return {
                    "steps": steps,
                    "minutes": round(elapsed / 60, 1),
                    "final_loss": round(float(np.mean(losses[-100:])), 3),
                }


# --------------------------------------------------------------------------- evaluation


def held_out_set(seed: int, n_brands: int, n_shelves: int, refs_per_brand: int):
    """References (augmented facings) and queries (shelf crops) of a catalogue never trained on."""
    catalogue = make_catalogue(n_brands, seed)
    rng = np.random.default_rng(seed)
    refs = [
        [product_crop(catalogue, b, rng) for _ in range(refs_per_brand)] for b in range(n_brands)
    ]
    queries, query_labels = shelf_crops(catalogue, range(seed * 100, seed * 100 + n_shelves))
    return refs, queries, np.array(query_labels)


def evaluate(
    embed, refs, queries, query_labels, *, threshold: float | None, rng_seed: int = 0
) -> dict:
    """Top-1 with 1/5/20 references per brand, and open-set rejection at ``threshold``."""
    rng = np.random.default_rng(rng_seed)
    n_brands = len(refs)
    ref_emb = embed([c for per in refs for c in per]).reshape(n_brands, len(refs[0]), -1)
    q_emb = embed(queries)
    figures: dict = {}
    for k in (1, 5, 20):
        accs = []
        for _ in range(5 if k < 20 else 1):
            pick = np.stack([rng.choice(len(refs[0]), k, replace=False) for _ in range(n_brands)])
            gallery = np.concatenate([ref_emb[b, pick[b]] for b in range(n_brands)])
            gallery_labels = np.repeat(np.arange(n_brands), k)
            best = (q_emb @ gallery.T).argmax(1)
            accs.append(float((gallery_labels[best] == query_labels).mean()))
        figures[f"top1_at_{k}"] = round(float(np.mean(accs)), 4)
    # open set: half the brands enrolled (5 references each), queries from all brands
    enrolled = np.arange(n_brands) < n_brands // 2
    gallery = np.concatenate([ref_emb[b, :5] for b in range(n_brands) if enrolled[b]])
    gallery_labels = np.repeat(np.flatnonzero(enrolled), 5)
    sims = q_emb @ gallery.T
    best_score, best_label = sims.max(1), gallery_labels[sims.argmax(1)]
    is_unknown = ~enrolled[query_labels]

    def open_set(t: float) -> dict:
        rejected = best_score < t
        correct = np.where(is_unknown, rejected, ~rejected & (best_label == query_labels))
        tp = float((rejected & is_unknown).sum())
        return {
            "threshold": round(float(t), 3),
            "open_set_accuracy": round(float(correct.mean()), 4),
            "unknown_precision": round(tp / max(rejected.sum(), 1), 4),
            "unknown_recall": round(tp / max(is_unknown.sum(), 1), 4),
            "known_accepted_correct": round(
                float(
                    (~rejected & ~is_unknown & (best_label == query_labels)).sum()
                    / max((~is_unknown).sum(), 1)
                ),
                4,
            ),
        }

    if threshold is None:
        threshold = max(np.arange(0.3, 0.95, 0.01), key=lambda t: open_set(t)["open_set_accuracy"])
    figures["open_set"] = open_set(threshold)
    figures["queries"] = len(queries)
    figures["brands"] = n_brands
    return figures


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/recognition"))
    parser.add_argument("--brands", type=int, default=500)
    parser.add_argument("--per-brand", type=int, default=24)
    parser.add_argument("--shelves", type=int, default=120)
    parser.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--init", type=Path, help="start from these weights (model.keras)")
    parser.add_argument(
        "--real-shelves", type=Path, nargs="*", default=[], help="DIR with images/ and teacher/"
    )
    parser.add_argument("--products", type=Path, help="DIR/<product>/photos (a train split)")
    parser.add_argument("--name", default="brand-embedding-v2")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(0)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{(time.perf_counter() - t0) / 60:5.1f} min] {msg}", flush=True)

    images, labels = training_pool(args.brands, args.per_brand, args.shelves, seed=1)
    sources = {"generated": int(len(images))}
    log(f"training pool: {len(images)} crops of {args.brands} generated brands")
    if args.real_shelves:
        real, real_labels = real_shelf_pool(args.real_shelves, int(labels.max()) + 1, log)
        images, labels = np.concatenate([images, real]), np.concatenate([labels, real_labels])
        sources["real_shelf_runs"] = int(len(np.unique(real_labels)))
        sources["real_shelf_crops"] = int(len(real))
    if args.products:
        photos, photo_labels = product_photo_pool(
            args.products, int(labels.max()) + 1, np.random.default_rng(2)
        )
        images, labels = np.concatenate([images, photos]), np.concatenate([labels, photo_labels])
        sources["product_photo_crops"] = int(len(photos))
        sources["products"] = int(len(np.unique(photo_labels)))
    log(f"pool: {len(images)} crops, {len(np.unique(labels))} classes {sources}")
    if args.init:
        model = keras.models.load_model(args.init, compile=False)
    else:
        model = build_embedding_model()
    run = train(
        model, images, labels, minutes=args.minutes, batch=args.batch, log=log, base_lr=args.lr
    )
    log(f"trained: {run}")

    fn = tf.function(lambda x: model(x, training=False))

    def embed(crops):
        batch = preprocess_crops(crops, INPUT_SIZE)
        return np.concatenate([fn(batch[i : i + 512]).numpy() for i in range(0, len(batch), 512)])

    val = evaluate(embed, *held_out_set(VAL_SEED, 60, 20, 20), threshold=None)
    log(f"generated validation brands: {val}")
    threshold = val["open_set"]["threshold"]
    test = evaluate(embed, *held_out_set(TEST_SEED, 100, 30, 20), threshold=threshold)
    log(f"generated test brands (held out): {test}")

    args.out.mkdir(parents=True, exist_ok=True)
    config_path = args.out / "config.json"
    previous = json.loads(config_path.read_text()) if config_path.is_file() else {}
    model.save(args.out / "model.keras")
    config = {
        "name": args.name,
        "input_size": INPUT_SIZE,
        "embedding_dim": EMBEDDING_DIM,
        # matching weights and thresholds: refit them with scripts/fit_matching.py
        "matching": previous.get("matching", {}),
        "training": {
            "init": str(args.init) if args.init else None,
            "brands": args.brands,
            "catalogue_seed": TRAIN_SEED,
            "per_brand": args.per_brand,
            "shelves": args.shelves,
            "real_shelves": [str(p) for p in args.real_shelves],
            "products": str(args.products) if args.products else None,
            "sources": sources,
            "batch": args.batch,
            "lr": args.lr,
            "parameters": int(model.count_params()),
            **run,
        },
        "generated_validation": val,
        "generated_test": test,
    }
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    log(f"saved to {args.out}; now refit the matcher: scripts/fit_matching.py --model {args.out}")


if __name__ == "__main__":
    main()
