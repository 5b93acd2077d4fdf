"""`attngan demo` (not implemented yet: issue 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import command, not_implemented
from .options import Quiet


@command
def demo(
    quiet: Quiet = False,
) -> None:
    """Run the whole pipeline on the built-in shapes data, in minutes on a CPU.

    Examples:

      attngan demo

      attngan demo --minutes 20 --out demo-run
    """
    not_implemented("demo", "issue 9")
