"""Integration tests use the real-cluster fixture ``cluster`` of ``tests/conftest.py``."""
