"""Shelf datasets: the common in-memory form, readers, synthetic shelves and tf.data."""
