"""Synthetic retail shelves with an exact box for every product facing and every empty gap.

A shelf is built in layers, each drawn with OpenCV on small arrays so that a 1024x768 image renders
in a few tens of milliseconds: a shelf back (pegboard, panel or wire), shelf rows of product
facings grouped in runs of the same product, empty gaps that show the dark shelf interior, shelf
edges with price labels, hanging strips and shelf-talkers that partly hide products, then the
camera: perspective, small rotation, uneven light, blur, sensor noise and JPEG artefacts.

Products come from a ``BrandCatalogue``: each ``BrandIdentity`` has a palette, a logo shape, an
invented name and a few flavour variants (a colour band), and sells one to three product families
(``box``, ``bottle``, ``can``, ``pouch``, ``jar``). ``render_product`` draws one facing; the audit
stage uses it to train brand embeddings with held-out catalogues (``make_catalogue`` with another
seed).

``generate_dataset`` writes a folder that every reader in ``skuaudit.datasets.readers`` accepts::

    out_dir/
      images/synth_000000.jpg ...       the shelves
      labels/synth_000000.txt ...       YOLO: "class cx cy w h" normalised, 0 = product, 1 = gap
      data.yaml                         YOLO class names
      annotations.coco.json             COCO boxes; each annotation has "attributes":
                                        {"brand": ..., "shelf_row": ...}
      annotations.csv                   SKU-110K CSV (header-less, class column "product"/"gap")
      brands.json                       the brand identities used

The package, one module per layer (every name is importable from ``skuaudit.datasets.synth``):

- ``brands``: ``BrandIdentity``, ``BrandCatalogue``, ``make_catalogue``, ``default_catalogue``.
- ``sprites``: one product facing (``render_product``), gallery references
  (``reference_packs``) and the real photos used as artwork or as
  whole facings.
- ``shelf``: ``render_shelf``: the back, the rows of facings and gaps, shelf edges, occluders;
  ``SynthShelf`` and ``draw_boxes``.
- ``camera``: perspective, light, blur, noise and JPEG over a drawn shelf, and the warped boxes.
- ``writers``: ``generate_dataset`` and ``image_seed``.
- ``cli``: ``skuaudit synth``.

Example:
    >>> shelf = render_shelf(seed=1, width=512, height=384)
    >>> shelf.image_bgr.shape, len(shelf.boxes_xyxy) == len(shelf.brands)
    ((384, 512, 3), True)
"""

from skuaudit.datasets.synth.brands import (
    FAMILIES,
    BrandCatalogue,
    BrandIdentity,
    catalogue_to_json,
    default_catalogue,
    make_catalogue,
)
from skuaudit.datasets.synth.cli import cli_main
from skuaudit.datasets.synth.shelf import SynthShelf, draw_boxes, render_shelf
from skuaudit.datasets.synth.sprites import reference_packs, render_product, shrink_texture
from skuaudit.datasets.synth.writers import generate_dataset, image_seed

__all__ = [
    "FAMILIES",
    "BrandCatalogue",
    "BrandIdentity",
    "SynthShelf",
    "catalogue_to_json",
    "cli_main",
    "default_catalogue",
    "draw_boxes",
    "generate_dataset",
    "image_seed",
    "make_catalogue",
    "reference_packs",
    "render_product",
    "render_shelf",
    "shrink_texture",
]
