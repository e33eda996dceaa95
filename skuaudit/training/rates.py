"""Default peak learning rates of a training run (``skuaudit train``, Model lab jobs).

Fine-tuning a trained model starts lower, so the first steps do not undo what it learned (the
default model's later stages used 5e-4 to 7e-4).
"""

SCRATCH_LEARNING_RATE = 2e-3
FINE_TUNE_LEARNING_RATE = 5e-4
