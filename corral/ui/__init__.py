"""The dashboard's templates, static files and the pure helpers that shape API views for them.

Nothing here does I/O: ``corral.api.ui`` reads the native API's views and hands them to
``summary`` and ``graph``, then renders the templates.
"""

from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
