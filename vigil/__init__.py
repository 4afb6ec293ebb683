"""Vigil: a self-hosted trust & safety engine."""

__version__ = "0.1.0"
