"""The ``corral`` command: a thin typer layer over ``corral.client`` and the server processes."""
