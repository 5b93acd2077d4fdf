"""The CLI surface: every command registered, with help and examples; version; stubs exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from attngan_cli import __version__
from attngan_cli.cli import app

runner = CliRunner()

COMMANDS = ["prep", "pretrain", "train", "sample", "attend", "serve", "eval", "demo", "import"]


def test_top_level_help_lists_every_command() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0, res.output
    for name in COMMANDS:
        assert name in res.output


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_examples(name: str) -> None:
    res = runner.invoke(app, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output
    if name in ("prep", "import"):  # groups: their subcommands carry the examples
        sub = {"prep": ["shapes"], "import": ["official"]}[name]
        for s in sub:
            r2 = runner.invoke(app, [name, s, "--help"])
            assert r2.exit_code == 0, r2.output
            assert "Example" in r2.output
    else:
        assert "Example" in res.output


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"attngan {__version__}"


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "attngan_cli.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_unknown_command_fails() -> None:
    res = runner.invoke(app, ["paint"])
    assert res.exit_code != 0


def test_quiet_before_the_command_silences_its_info_messages(tmp_path):
    from typer.testing import CliRunner

    from attngan_cli.cli import app

    args = ["prep", "shapes", "--train", "8", "--test", "4", "--image-size", "20"]
    loud = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.h5")])
    quiet = CliRunner().invoke(app, ["-q", *args, "--out", str(tmp_path / "b.h5")])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "wrote 12 shapes images" in loud.output
    assert "INFO" not in quiet.output and "wrote" not in quiet.output  # `attngan -q prep ...` as `prep ... -q`
    again = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c.h5")])  # -q does not leak into the next run
    assert "wrote 12 shapes images" in again.output
