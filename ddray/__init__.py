"""ddray: Ray-distributed evaluation orchestrator for dataset distillation."""

from importlib.metadata import PackageNotFoundError, version

try:  # the installed distribution's version (pyproject.toml), so a release bump reaches every row
    __version__ = version("ddray")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
