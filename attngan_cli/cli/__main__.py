"""``python -m attngan_cli.cli``: the same as the ``attngan`` command."""

from attngan_cli.cli.app import main

main()
