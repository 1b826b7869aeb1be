"""Corral: one scheduler for long-running services and batch work on a science cluster."""

__version__ = "0.1.0"
