"""Keel's domain core. Imports no Qt (tests/test_core_no_qt.py enforces it)."""
