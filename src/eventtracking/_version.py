"""The package version, in one place that imports nothing."""

__version__ = "5.0.0"
