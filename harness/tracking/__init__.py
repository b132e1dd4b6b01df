"""Per-run tracking: the Tracker protocol the training loop talks to (the local run folder
first, record/run_dir.py) and the optional W&B mirror of one run."""
