"""linctl: efficient-attention Transformers from raw text to published numbers."""


def __getattr__(name: str) -> str:
    # ``__version__`` is read from the installed package's metadata when first asked for, not on import:
    # `linctl` handles Ctrl-C from its first module on (linctl.cli.start), and this package loads before it.
    if name != "__version__":
        raise AttributeError(f"module 'linctl' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("linctl")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
