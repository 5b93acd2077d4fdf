"""The CLI's table of which flag sets which config field: every entry is a real flag of its command and a
real field of the config that command builds."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from attngan_cli.apps.demo import DemoOptions
from attngan_cli.apps.sample import SampleSettings
from attngan_cli.apps.serve.engine import ServeSettings
from attngan_cli.cli import app
from attngan_cli.cli.flags import FLAGS
from attngan_cli.config.captioner import CaptionPretrainConfig
from attngan_cli.config.schema import PretrainConfig, TrainConfig
from attngan_cli.evaluation.evaluate import EvalOptions

CONFIGS = {"train": (TrainConfig,), "pretrain": (PretrainConfig, CaptionPretrainConfig), "sample": (SampleSettings,),
           "eval": (EvalOptions,), "demo": (DemoOptions,), "serve": (ServeSettings,)}


def _has_field(cls: type, dotted: str) -> bool:
    *parents, last = dotted.split(".")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for part in parents:
        if part not in fields or not dataclasses.is_dataclass(fields[part].default_factory):
            return False
        fields = {f.name: f for f in dataclasses.fields(fields[part].default_factory)}
    return last in fields


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_each_flag_is_an_option_of_its_command_and_each_field_exists(name: str) -> None:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in param.opts}
    for dotted, flag in FLAGS[name].items():
        assert flag in options, f"attngan {name} has no option {flag}"
        assert any(_has_field(cls, dotted) for cls in CONFIGS[name]), f"{name}: no config field {dotted}"
    assert set(FLAGS) == set(CONFIGS)
