"""linctl: efficient-attention Transformers from raw text to published numbers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("linctl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
