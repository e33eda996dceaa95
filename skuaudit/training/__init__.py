"""Detector training, evaluation and their command lines."""
