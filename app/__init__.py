"""Keel: offline desktop MLOps for scikit-learn models."""

from pathlib import Path

__version__ = "0.1.0"

SOURCE_ROOT = Path(__file__).resolve().parents[1]
RESOURCES = SOURCE_ROOT / "resources"
