"""Start a training run from a model folder's weights, the network grown where the run asks.

``load_initial_weights(model, config, model_dir)`` copies a trained model into a freshly built
one that may be wider (a larger ``alpha``), deeper (more head convolutions), split into box and
class towers, or carry more anchor shapes; every grown part starts so that the new network's
detections are the source's, and training moves on from there. ``architecture_of(model_dir)``
gives the settings to fine-tune a folder as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def architecture_of(model_dir: str | Path) -> dict:
    """The ``TrainConfig`` architecture fields of a model folder, to fine-tune it as it is:
    ``image_size``, ``alpha``, ``head_depth``, ``separate_towers`` and its anchors.

    Raises:
        ModelLoadError: not a model folder with a readable ``config.json``.
    """
    from skuaudit.detector.detector import read_model_config

    source = read_model_config(model_dir)
    return {
        "image_size": source.image_size,
        "alpha": source.alpha,
        "head_depth": source.head_depth,
        "separate_towers": source.separate_towers,
        "anchor_aspect_ratios": tuple(source.anchor_aspect_ratios),
        "anchor_size_factor": source.anchor_size_factor,
    }


def load_initial_weights(model, det_config, model_dir: Path) -> None:
    """Copy the weights of the model folder ``model_dir`` into ``model``.

    The architectures must match, except that ``model`` may have a wider backbone (a larger
    ``alpha``, see :func:`_widen_weights`), a deeper head, separate box and class towers where
    the source shares one, or more anchor aspect ratios (the source's, then new ones). A shared
    tower's convolutions are copied into both towers. Extra
    convolutions start as the identity (a depthwise kernel with a single 1 at its centre, an
    identity pointwise kernel, no bias): their inputs come out of ReLU6 and lie in ``[0, 6]``,
    where ReLU6 of the identity is the identity. A new anchor shape starts as a copy of the
    source's anchor of the same scale and the nearest ratio, with its box outputs rescaled to
    its own shape (:func:`_grow_anchor_outputs`), so it predicts the same boxes and scores as
    that anchor. Either way the new model's detections (after NMS) are the source's. (The same
    number of anchor shapes with other ratios or sizes is copied as is, and the head learns the
    new shapes: stages B and C of the default model changed theirs that way.)

    Raises:
        ValueError: the folder's input size or head layout differs from ``det_config``, its
            backbone is wider, its head is deeper, or it has separate towers and the run shares
            one.
    """
    from skuaudit.detector import DetectorConfig, load_raw_model
    from skuaudit.detector.detector import CONFIG_FILE

    source = DetectorConfig.from_json(model_dir / CONFIG_FILE)
    if source.image_size != det_config.image_size or source.alpha > det_config.alpha:
        raise ValueError(
            f"{model_dir}: image_size {source.image_size} / alpha {source.alpha} do not fit the "
            f"run's {det_config.image_size} / {det_config.alpha} (same size, alpha at most the run's)"
        )
    old_ratios = tuple(source.anchor_aspect_ratios)
    new_ratios = tuple(det_config.anchor_aspect_ratios)
    grows_anchors = (
        new_ratios[: len(old_ratios)] == old_ratios
        and len(new_ratios) > len(old_ratios)
        and (source.anchor_scales, source.anchor_size_factor, source.strides)
        == (det_config.anchor_scales, det_config.anchor_size_factor, det_config.strides)
    )
    layout = (source.anchor_spec.anchors_per_location, source.num_classes, source.fpn_channels)
    wanted = (
        det_config.anchor_spec.anchors_per_location,
        det_config.num_classes,
        det_config.fpn_channels,
    )
    if grows_anchors:
        layout = wanted[:1] + layout[1:]
    if layout != wanted:
        raise ValueError(
            f"{model_dir}: its heads (anchors per location, classes, FPN channels {layout}) differ "
            f"from the run's {wanted}; pass the same anchor_aspect_ratios (new ones may follow them)"
        )
    if source.head_depth > det_config.head_depth:
        raise ValueError(
            f"{model_dir}: its head has {source.head_depth} convolutions, more than the run's "
            f"{det_config.head_depth}"
        )
    if source.separate_towers and not det_config.separate_towers:
        raise ValueError(f"{model_dir}: it has separate box and class towers, the run shares one")
    source_model = load_raw_model(model_dir)

    def is_head(layer) -> bool:  # matched by name; the rest by order (auto-named sub-models)
        return layer.name.startswith("head_")

    targets = [layer for layer in _leaf_layers(model) if layer.weights and not is_head(layer)]
    sources = [
        layer for layer in _leaf_layers(source_model) if layer.weights and not is_head(layer)
    ]
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in targets]
    source_shapes = [[tuple(w.shape) for w in layer.weights] for layer in sources]
    fits = len(shapes) == len(source_shapes) and all(
        len(a) == len(b)
        and all(
            len(x) == len(y) and all(i >= j for i, j in zip(x, y, strict=True))
            for x, y in zip(a, b, strict=True)
        )
        for a, b in zip(shapes, source_shapes, strict=True)
    )
    if not fits or (source.alpha == det_config.alpha and shapes != source_shapes):
        raise ValueError(f"{model_dir}: its layers differ from the run's architecture")
    for target, layer in zip(targets, sources, strict=True):
        target.set_weights(widen_weights(target, layer.get_weights()))
    source_head = {layer.name: layer for layer in source_model.layers if is_head(layer)}
    for layer in model.layers:
        if not is_head(layer) or not layer.weights:
            continue
        name = layer.name
        if not source.separate_towers:
            name = re.sub(r"^head_(box|class)_conv", "head_conv", name)
        if name in source_head:
            weights = source_head[name].get_weights()
            if grows_anchors and name in ("head_box", "head_class"):
                weights = grow_anchor_outputs(weights, source, det_config, box=name == "head_box")
            layer.set_weights(weights)
            continue
        depthwise, pointwise, bias = layer.get_weights()  # a convolution the source lacks
        depthwise[:] = 0.0
        depthwise[depthwise.shape[0] // 2, depthwise.shape[1] // 2, :, 0] = 1.0
        pointwise[0, 0] = np.eye(pointwise.shape[2], dtype=pointwise.dtype)
        layer.set_weights([depthwise, pointwise, np.zeros_like(bias)])


def _leaf_layers(model) -> list:
    """The layers of ``model`` in order, nested models (the backbone's taps) opened up."""
    import keras

    leaves = []
    for layer in model.layers:
        leaves.extend(_leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return leaves


def widen_weights(layer, source_weights: list) -> list:
    """The weights of ``layer`` (already built, freshly initialised) holding ``source_weights``,
    the same layer of a narrower network, so that the wider network computes the same outputs.

    Every channel of the narrower layer keeps its index; the new channels come after. Per
    weight: a depthwise kernel ``(h, w, C, 1)`` and 1-D weights (batch-norm statistics, biases)
    take the source's values in their first channels; a convolution kernel ``(h, w, in, out)``
    takes them in ``[:in, :out]`` and gets **zeros from the new input channels to the old
    output channels**. The new channels keep their random initial values, so they compute
    something, but it does not reach any old channel until training moves those zeros: the
    old channels, the residual sums and the heads (whose inputs do not widen) see exactly what
    the source computed. Training then grows the new weights (the zeros get gradients from the
    start, as the new channels are not zero). With equal shapes this is a plain copy.
    """
    import keras

    weights = [np.array(w) for w in layer.get_weights()]
    for index, (target, source) in enumerate(zip(weights, source_weights, strict=True)):
        if target.shape == source.shape:
            weights[index] = np.array(source, dtype=target.dtype)
            continue
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D) or (
            isinstance(layer, keras.layers.SeparableConv2D) and index == 0
        )
        target[tuple(slice(0, n) for n in source.shape)] = source
        if target.ndim == 4 and not depthwise:
            target[:, :, source.shape[2] :, : source.shape[3]] = 0.0
    return weights


def grow_anchor_outputs(weights: list, source, target, *, box: bool) -> list:
    """``head_box`` / ``head_class`` weights ``[depthwise, pointwise, bias]`` of ``source``
    grown to the anchors of ``target`` (the source's aspect ratios followed by new ones).

    Output channels are ordered by anchor (``scales x aspect_ratios``), then by box delta
    ``[ty, tx, th, tw]`` or class. A new anchor copies the channels of the source anchor of the
    same scale whose ratio is nearest (in log), rescaled so that it decodes to the same box:
    with ``k = sqrt(new ratio / source ratio)`` the new anchor is ``k`` times wider and ``1/k``
    times as high, so ``ty`` is multiplied by ``k``, ``tx`` by ``1/k``, and ``th`` / ``tw``
    shift by ``+log k`` / ``-log k`` (over ``box_variance``).
    """
    depthwise, pointwise, bias = weights
    width = 4 if box else source.num_classes
    old_ratios, new_ratios = source.anchor_aspect_ratios, target.anchor_aspect_ratios
    variance = np.asarray(target.box_variance, dtype=np.float64)
    out_w, out_b = [], []
    for scale in range(len(target.anchor_scales)):
        for ratio in new_ratios:
            nearest = int(np.argmin([abs(np.log(ratio / r)) for r in old_ratios]))
            start = (scale * len(old_ratios) + nearest) * width
            w = pointwise[..., start : start + width].astype(np.float64)
            b = bias[start : start + width].astype(np.float64)
            if box:
                k = np.sqrt(ratio / old_ratios[nearest])
                factor = np.array([k, 1.0 / k, 1.0, 1.0])
                w, b = (
                    w * factor,
                    b * factor + np.array([0.0, 0.0, np.log(k), -np.log(k)]) / variance,
                )
            out_w.append(w)
            out_b.append(b)
    grown_w = np.concatenate(out_w, axis=-1).astype(pointwise.dtype)
    return [depthwise, grown_w, np.concatenate(out_b).astype(bias.dtype)]
