"""``python -m corral.cli``: the same as the ``corral`` console script."""

from corral.cli.main import app

app(prog_name="corral")
