"""Where a model comes from: the built-in model and random packs for tests."""
