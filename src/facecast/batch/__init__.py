"""Batch jobs over many clips: locally with threads, or on a Ray cluster."""
