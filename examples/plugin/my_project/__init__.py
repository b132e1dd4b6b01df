"""My model, dataset and regularizer for harness (see harness_plugins.py)."""
