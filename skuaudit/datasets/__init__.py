"""Shelf datasets: the common in-memory form, readers, splits, synthetic shelves, training examples and batches."""
