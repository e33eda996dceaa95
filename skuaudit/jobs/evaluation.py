"""Evaluation of a model folder on generated shelves or on an uploaded data set's validation photos."""

from __future__ import annotations

from pathlib import Path

from skuaudit.jobs.datasets import read_uploaded_dataset

EVAL_VAL_FRACTION = 0.2  # the validation split training holds out (TrainConfig.val_fraction)


def evaluate_model(model_dir: str | Path, n_images: int = 8, seed: int = 4242, examples: int = 3):
    """Evaluate a model folder on generated shelves it has not seen.

    Args:
        model_dir: the model folder.
        n_images: shelves rendered (640x480) for the evaluation.
        seed: their seed; the default differs from training seeds.
        examples: how many shelves to return with boxes drawn.

    Returns:
        ``(EvalReport, [example BGR images with predicted boxes])``.
    """
    import tempfile

    import cv2

    from skuaudit.datasets.base import Dataset
    from skuaudit.datasets.synth import image_seed, render_shelf
    from skuaudit.detections import CLASS_NAMES
    from skuaudit.detector import Detector

    detector = Detector.load(model_dir)
    with tempfile.TemporaryDirectory(prefix="skuaudit-eval-") as tmp:
        images, pictures = [], []
        for i in range(n_images):
            shelf = render_shelf(image_seed(seed, i), width=640, height=480)
            path = Path(tmp) / f"shelf_{i:03d}.jpg"
            cv2.imwrite(str(path), shelf.image_bgr)
            images.append(shelf.to_labeled_image(path))
            pictures.append(shelf.image_bgr)
        return _evaluate(
            detector, Dataset(list(CLASS_NAMES), images), pictures.__getitem__, examples
        )


def evaluate_model_on_dataset(
    model_dir: str | Path,
    dataset_dir: str | Path,
    max_images: int = 50,
    *,
    seed: int = 0,
    examples: int = 3,
):
    """Evaluate a model folder on the validation photos of an uploaded data set.

    Scores the images training on that data set holds out (``split_by_image`` with
    ``EVAL_VAL_FRACTION`` and ``seed``, as a Model lab job splits it), at most ``max_images`` of
    them, through the photo path (tiled when large), each class only on the images that label it.

    Returns:
        ``(EvalReport, [example BGR images with predicted boxes], images scored)``.

    Raises:
        DatasetError: unreadable, empty, or classes that are not detector classes.
    """
    import cv2

    from skuaudit.datasets.base import Dataset, DatasetError
    from skuaudit.datasets.splits import split_by_image, to_detector_classes
    from skuaudit.detections import CLASS_NAMES
    from skuaudit.detector import Detector

    dataset = read_uploaded_dataset(dataset_dir)
    images = to_detector_classes(dataset)
    if len(images) < 2:
        raise DatasetError(
            f"{Path(dataset_dir).name}: {len(images)} image(s); at least 2 are needed to hold "
            "some out for the evaluation"
        )
    _, val = split_by_image(Dataset(dataset.classes, images), EVAL_VAL_FRACTION, seed)
    val = val[: max(1, int(max_images))]
    detector = Detector.load(model_dir)

    def picture(i: int):
        image = cv2.imread(str(val[i].path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{Path(val[i].path).name}: cannot decode image")
        return image

    report, shown = _evaluate(detector, Dataset(list(CLASS_NAMES), val), picture, examples)
    return report, shown, len(val)


def _evaluate(detector, gt, picture, examples: int):
    """``(EvalReport, drawn examples)`` of ``detector`` on ``gt``; ``picture(i)`` is image i (BGR).

    Boxes are counted and drawn at the model's own per-class defaults, as audits count them; AP
    uses every box down to ``AP_SCORE_THRESHOLD``.
    """
    from skuaudit.drawing import draw_class_boxes
    from skuaudit.training.evaluate import AP_SCORE_THRESHOLD, evaluate_detections

    thresholds = detector.config.default_thresholds()
    predictions, shown = [], []
    for i in range(len(gt.images)):
        image = picture(i)
        det = detector.detect(image, score_threshold=AP_SCORE_THRESHOLD)
        predictions.append(det)
        if i < examples:
            shown.append(draw_class_boxes(image, det, thresholds))
    report = evaluate_detections(gt, predictions, score_threshold=detector.config.threshold_map())
    return report, shown
