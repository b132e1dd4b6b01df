"""Experiment tracking: the local run store and the optional W&B mirror."""
