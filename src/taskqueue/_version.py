"""The version of taskqueue: the one place it is written (the package root and the build read
it from here; so can any layer, without importing the package root's public names)."""

__version__ = "0.2.0"
