"""Wiring Live audit to the audit pipeline: the detector in video mode, the models and brand
table loaded once per server (``LivePipeline``), its cache key, and saving a live result."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skuaudit.detections import Detections
from skuaudit.drawing import BGR, hex_to_bgr
from skuaudit.errors import UserError
from skuaudit.live.processor import DEFAULT_WINDOW, Analyser, LiveProcessor, LiveState
from skuaudit.metrics import ProductInfo

# The Live audit page's default mode: Dense shelf (tiles), which counts far closer to the photo
# path than one pass on real shelves, for ~5x the detector time a frame (figures: the model
# card and the README's "Live audit"; `bench/bench_real_shelves.py` measures them).
DENSE_BY_DEFAULT = True


class PipelineLoadError(UserError):
    """A model the live audit needs is missing or broken; the message names the folder and file."""


class VideoDetector:
    """The detector in video mode: the same frame-rate-first path for every frame.

    Args:
        detector: a ``skuaudit.detector.Detector``.
        dense: ``False`` runs one pass over the whole frame squashed to the model input (speed
            first; the default). ``True`` runs the frame in overlapping tiles at full resolution,
            for a packed shelf whose facings are too small for one pass. Those are the photo
            path's tiles without its mirrored view and extra tile sizes, which cost several
            times more.
    """

    def __init__(self, detector, *, dense: bool = False) -> None:
        self.dense = dense
        self.model_dir = getattr(detector, "model_dir", None)
        self._detector = (
            detector.with_config(flip_classes=[], multiscale_classes=[], class_tile_fractions={})
            if dense
            else detector
        )

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self._detector.detect(image_bgr, tiled=self.dense)


@dataclass
class LivePipeline:
    """The models and brand table a live session uses, loaded once per server.

    Attributes:
        detector: the active detector, in single-pass mode.
        dense_detector: the same detector in tiles, for packed shelves (``VideoDetector``).
        recognizer: product recognition model.
        gallery: enrolled reference embeddings.
        brand_names: brand id -> name.
        brand_colours: brand id -> BGR colour (the catalogue colour).
        products: product id -> ``ProductInfo`` (brand and name).
        model_name: name saved with audits.
        model_version_id: ``ModelVersion`` of the detector, when registered.
    """

    detector: VideoDetector
    dense_detector: VideoDetector
    recognizer: object
    gallery: object
    brand_names: dict[int, str]
    brand_colours: dict[int, BGR]
    model_name: str
    model_version_id: int | None = None
    products: dict[int, ProductInfo] = field(default_factory=dict)

    @classmethod
    def load(cls, url: str | None = None, model_dir: str | Path | None = None) -> LivePipeline:
        """Load the active detector, the recognizer, the gallery, the brands and products.

        Raises:
            PipelineLoadError: a model folder that is missing or broken.
        """
        from skuaudit.audit import detector_name, load_detector
        from skuaudit.detector import ModelLoadError
        from skuaudit.model_registry import model_version_for
        from skuaudit.recognition import Gallery, RecognitionModelError, Recognizer
        from skuaudit.storage.queries import list_brands, product_infos

        try:
            loaded = load_detector(model_dir, url)
            recognizer = Recognizer.load()
        except (ModelLoadError, RecognitionModelError) as exc:
            raise PipelineLoadError(str(exc)) from exc
        gallery = Gallery.from_database(url, recognizer)
        brands = list_brands(url)
        detector = VideoDetector(loaded)
        return cls(
            detector=detector,
            dense_detector=VideoDetector(loaded, dense=True),
            recognizer=recognizer,
            gallery=gallery,
            brand_names={b.id: b.name for b in brands},
            brand_colours={b.id: hex_to_bgr(b.color_hex) for b in brands},
            model_name=detector_name(detector, url),
            model_version_id=model_version_for(detector.model_dir, url),
            products=product_infos(url),
        )

    def analyse(self, frame_bgr: np.ndarray, *, dense: bool = False, cache=None) -> Detections:
        """Detections with products, brands and shelf rows of one frame (``audit.analyse_image``,
        the fast recognition path); ``dense`` runs the detector in tiles (``VideoDetector``);
        ``cache`` is the stream's ``skuaudit.recognition.TrackCache`` (``None``: every facing
        is embedded)."""
        from skuaudit.audit import analyse_image

        detector = self.dense_detector if dense else self.detector
        return analyse_image(
            frame_bgr, detector, self.recognizer, self.gallery, fast=True, cache=cache
        ).detections

    def analyser(self, *, dense: bool = False, cache: bool = True) -> Analyser:
        """The frame -> detections function of a ``LiveProcessor`` in one detector mode; with
        ``cache`` it holds its own ``TrackCache`` (one analyser per stream: the processor calls
        it from its one worker thread), so facings still in place since the previous frame
        are not embedded again."""
        from skuaudit.recognition import TrackCache

        return functools.partial(self.analyse, dense=dense, cache=TrackCache() if cache else None)

    def name_pending(self, frame_bgr: np.ndarray, detections: Detections) -> Detections:
        """``detections`` with its pending facings (``data["pending"]``: not embedded yet within
        the live budget, ``skuaudit.recognition.TrackCache``) recognised now, on the fast path
        and without a budget (saving is not a per-frame path); the same detections when none
        is pending."""
        pending = np.asarray(detections.data.get("pending", np.zeros(len(detections))), bool)
        if not pending.any():
            return detections
        index = np.flatnonzero(pending)
        named = self.recognizer.assign_products(
            frame_bgr, detections[index], self.gallery, fast=True
        )
        data = {
            key: np.asarray(detections.data[key]).copy()
            for key in ("product_id", "product_score", "brand_id", "brand_score")
        }
        for key, values in data.items():
            values[index] = named.data[key]
        return detections.with_data(**data, pending=np.zeros(len(detections), bool))

    def new_processor(
        self, window: int = DEFAULT_WINDOW, *, dense: bool = DENSE_BY_DEFAULT
    ) -> LiveProcessor:
        return LiveProcessor(
            self.analyser(dense=dense),
            self.brand_names,
            self.brand_colours,
            window=window,
            products=self.products,
        )


def pipeline_version(url: str | None = None) -> str:
    """A cache key of what ``LivePipeline.load`` reads: the active model folder (and when its
    files last changed), the brands, the products and the reference images. A new brand,
    product, reference or activated model changes it, so the live page reloads its pipeline
    (the Photo audit page reads them per photo batch).
    """
    import hashlib

    import sqlalchemy as sa

    from skuaudit.model_registry import active_model_dir
    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    model_dir = active_model_dir(url)
    changed = [p.stat().st_mtime_ns for p in sorted(model_dir.glob("*")) if p.is_file()]
    with session_scope(url) as s:
        brands = s.execute(
            sa.select(m.Brand.id, m.Brand.name, m.Brand.color_hex, m.Brand.deleted_at).order_by(
                m.Brand.id
            )
        ).all()
        products = s.execute(
            sa.select(m.Product.id, m.Product.brand_id, m.Product.name).order_by(m.Product.id)
        ).all()
        references = tuple(
            s.execute(
                sa.select(sa.func.count(m.ReferenceImage.id), sa.func.max(m.ReferenceImage.id))
            ).one()
        )
    catalogue = ([tuple(b) for b in brands], [tuple(p) for p in products], references)
    key = repr((str(model_dir.resolve()), changed, catalogue))
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def save_live_audit(
    processor: LiveProcessor,
    store_id: int,
    pipeline: LivePipeline,
    *,
    user_name: str = "",
    url: str | None = None,
    allow_empty: bool = False,
):
    """Save the processor's smoothed result as one audit, once per stream (``save_once``).

    The snapshot is the window's representative frame (at the largest size the window holds)
    with its own detections, so the saved detections, counts and snapshot agree with each
    other; ``save_audit`` writes everything in one transaction.
    Facings of that frame still pending (not embedded yet within the live budget) are
    recognised first (``LivePipeline.name_pending``), so no pending facing is stored.

    Returns:
        ``audit.SavedAudit``: what the database now holds (facings, gaps, snapshot size), which
        is what the page reports.

    Raises:
        UserError: nothing processed yet, nothing detected and not ``allow_empty``
            (``EmptyAuditError``), unknown store, or saved already (``AlreadySavedError``).
    """
    from skuaudit.audit import EmptyAuditError, ImageAnalysis, save_audit, saved_audit

    def save(state: LiveState) -> int:
        if state.frame_bgr is None:
            raise UserError("no frame has been analysed yet: start the camera first")
        if not allow_empty and len(state.detections) == 0:
            raise EmptyAuditError(
                "nothing was detected in the last frames (0 facings, 0 gaps); tick 'Nothing "
                "detected: save an empty shelf anyway' to record an empty shelf"
            )
        return save_audit(
            store_id,
            [
                ImageAnalysis(
                    state.frame_bgr, pipeline.name_pending(state.frame_bgr, state.detections)
                )
            ],
            source="live",
            user_name=user_name,
            model_name=pipeline.model_name,
            model_version_id=pipeline.model_version_id,
            url=url,
            allow_empty=allow_empty,
        )

    audit_id, _ = processor.save_once(save)
    return saved_audit(audit_id, url)
