"""The ``attngan`` entry point. This module only registers commands; each lives in ``commands/``."""

from __future__ import annotations

from typing import Annotated

import typer

from attngan_cli import __version__
from attngan_cli.cli.commands import attend, demo, prep, pretrain, sample, serve, train
from attngan_cli.cli.commands import eval as eval_cmd
from attngan_cli.cli.commands import import_ as import_cmd
from attngan_cli.cli.commands import plot as plot_cmd
from attngan_cli.cli.commands import runs as runs_cmd
from attngan_cli.cli.console import set_quiet_before_command
from attngan_cli.core.allocator import tune_host_allocator

app = typer.Typer(
    name="attngan",
    help="AttnGAN (Xu et al., CVPR 2018) made practical: prepare data, pretrain DAMSM, train the attentional "
    "GAN, sample, draw attention figures and evaluate. Start with `attngan demo`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"attngan {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or info messages.")] = False,
) -> None:
    tune_host_allocator()  # freed tensor memory is reused, not handed back to the kernel (allocator.py)
    set_quiet_before_command(quiet)  # per invocation: an earlier in-process one's -q does not leak


app.add_typer(prep.app, name="prep")
app.command("pretrain")(pretrain.pretrain)
app.command("train")(train.train)
app.command("sample")(sample.sample)
app.command("attend")(attend.attend)
app.command("serve")(serve.serve)
app.command("eval")(eval_cmd.evaluate)
app.command("demo")(demo.demo)
app.add_typer(import_cmd.app, name="import")
app.command("runs")(runs_cmd.runs)
app.command("plot")(plot_cmd.plot)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
