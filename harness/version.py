"""The package's version and folder, in a leaf module: any layer can say which harness wrote
a file, or find the checkout it runs from, without importing the package face (which
re-exports the Python API from the top layer)."""

from pathlib import Path

__version__ = "0.1.0"
PACKAGE_DIR = Path(__file__).resolve().parent  # harness/ (its parent holds studies/ in a checkout)
