"""``attngan serve``: a local web page and HTTP API over trained checkpoints.

The package is split so that only :mod:`app` and :mod:`server` import the web stack (FastAPI, uvicorn:
the optional extra ``attngan[serve]``): :mod:`engine` (models, request checks, batching) and :mod:`render`
(JSON answers) are plain Python over torch, and this module only checks that the stack is installed.
"""

from __future__ import annotations

import importlib.util

from attngan_cli.core.errors import AttnGANError

STACK = ("fastapi", "uvicorn")  # what `pip install "attngan[serve]"` adds
EXTRA = "serve"


def missing_stack() -> list[str]:
    """The packages of the web stack that are not installed."""
    return [name for name in STACK if importlib.util.find_spec(name) is None]


def require_stack() -> None:
    """:class:`AttnGANError` naming the extra when FastAPI or uvicorn is missing."""
    missing = missing_stack()
    if missing:
        raise AttnGANError(
            f"attngan serve needs {' and '.join(missing)} (not installed), the web stack of the extra "
            f"'{EXTRA}': pip install \"attngan[{EXTRA}]\" (or pip install -e \".[{EXTRA}]\" in a checkout)"
        )
