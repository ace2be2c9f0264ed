"""Dockyard: a Docker-compatible container engine in Python, with no daemon."""

__version__ = "0.1.0"
