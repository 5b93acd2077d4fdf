"""``python -m attngan_cli`` runs the ``attngan`` command."""

from .cli import app

if __name__ == "__main__":
    app(prog_name="attngan")
