"""Keel: offline desktop MLOps for scikit-learn models."""

__version__ = "0.1.0"
