"""harness: an ablation harness for regularization in deep learning."""
__version__ = "0.1.0"
