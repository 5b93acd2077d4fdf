"""The command line: Typer and Rich live here and nowhere below. :mod:`.app` registers the commands; each
command is a thin module in :mod:`.commands`."""

from attngan_cli.cli.app import app, main

__all__ = ["app", "main"]
