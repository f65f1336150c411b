"""tradepilot: a trade-execution engine for systematic traders."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tradepilot")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"
