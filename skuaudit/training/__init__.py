"""Detector training, evaluation and their command lines.

- ``train``: ``TrainConfig`` and ``train_detector`` (one Keras ``fit`` loop, any backend);
- ``warm_start``: start a run from a model folder, the network grown where asked;
- ``calibration``: per-class thresholds and the photo path of a trained folder;
- ``evaluate``: COCO AP, counting and row-count errors, ``skuaudit evaluate``;
- ``model_card``: the card and training record of a model folder;
- ``harvest``: real product crops for the synthetic shelves;
- ``cli``: ``skuaudit train``; ``rates``: default learning rates.
"""
