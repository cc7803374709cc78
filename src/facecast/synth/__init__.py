"""Synthetic audio and training data."""
