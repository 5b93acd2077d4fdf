"""``python -m attngan_cli`` runs the ``attngan`` command."""

from attngan_cli.cli.app import app

if __name__ == "__main__":
    app(prog_name="attngan")
