"""Executors: one per driver (``process``, later ``docker``); each starts and supervises tasks."""
