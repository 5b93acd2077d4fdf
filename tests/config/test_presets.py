"""Configs and presets: JSON round trip, the official values, strict overrides and preset definitions."""

from __future__ import annotations

import json

import pytest

from attngan_cli.archs.registry import base_preset, image_sizes, named_preset_names, new_train_config
from attngan_cli.config.presets import (
    PRESETS,
    Preset,
    build_preset,
    get_preset,
    make_caption_pretrain_config,
    make_pretrain_config,
    make_train_config,
    preset_names,
    preset_value,
)
from attngan_cli.config.schema import GeneratorConfig, PretrainConfig, TrainConfig, default_image_size
from attngan_cli.config.serialize import apply_overrides, diff, from_dict, to_dict
from attngan_cli.core.errors import AttnGANError, ConfigMismatchError


@pytest.mark.parametrize("preset", preset_names())
def test_config_round_trip_through_json(preset: str) -> None:
    for make, cls in ((make_train_config, TrainConfig), (make_pretrain_config, PretrainConfig)):
        cfg = make(preset)
        again = from_dict(cls, json.loads(json.dumps(to_dict(cfg))))
        assert again == cfg
        assert diff(to_dict(cfg), to_dict(again)) == []


def test_presets_carry_the_official_values() -> None:
    bird = make_train_config("bird")
    assert (bird.generator.stages, bird.generator.base_size, bird.generator.ngf, bird.discriminator.ndf) == (3, 64, 32, 64)
    assert (bird.generator.r_num, bird.words, bird.lambda_damsm, bird.batch_size, bird.epochs) == (2, 18, 5.0, 20, 600)
    coco = make_train_config("coco")
    assert (coco.generator.ngf, coco.discriminator.ndf, coco.generator.r_num, coco.words) == (48, 96, 3, 12)
    assert (coco.lambda_damsm, coco.batch_size, coco.epochs) == (50.0, 14, 120)
    for cfg in (bird, coco):
        assert (cfg.damsm.gamma1, cfg.damsm.gamma2, cfg.damsm.gamma3) == (4.0, 5.0, 10.0)
        assert (cfg.generator.z_dim, cfg.generator.condition_dim, cfg.generator.embedding_dim) == (100, 100, 256)
        assert cfg.lr_g == cfg.lr_d == 2e-4 and cfg.betas == (0.5, 0.999)
    pre = make_pretrain_config("bird")
    assert (pre.batch_size, pre.lr, pre.grad_clip, pre.image.image_size, pre.text.word_dim) == (48, 0.002, 0.25, 299, 300)
    # the official DAMSM caption lengths (cfg/DAMSM/bird.yml 18, coco.yml 15); the GANs': 18 and 12
    assert pre.text.words == 18 and make_pretrain_config("coco").text.words == 15
    assert make_train_config("bird").words == 18 and make_train_config("coco").words == 12
    # the official pretrain_DAMSM.py: batch-statistics BN in the frozen Inception layers, a new Adam per epoch
    for name in ("bird", "coco"):
        p = make_pretrain_config(name)
        assert (p.image.frozen_bn, p.adam_per_epoch, p.image.resize_align_corners) == ("train", True, False), name
    shapes = make_pretrain_config("shapes")
    assert (shapes.image.frozen_bn, shapes.adam_per_epoch) == ("eval", False)
    with pytest.raises(AttnGANError, match="image.frozen_bn must be one of train, eval"):
        make_pretrain_config("bird", {"image.frozen_bn": "batch"})
    assert pre.group_by == [] and make_pretrain_config("coco").group_by == []  # the paper's random batches


def test_overrides_apply_and_unknown_fields_are_named() -> None:
    cfg = make_train_config("bird", {"generator.ngf": 64, "lambda_damsm": 0, "batch_size": None})
    assert cfg.generator.ngf == 64 and cfg.lambda_damsm == 0.0 and cfg.batch_size == 20
    with pytest.raises(ConfigMismatchError, match="generator.nfg"):
        apply_overrides(cfg, {"generator.nfg": 3})
    with pytest.raises(ConfigMismatchError, match="colour"):
        from_dict(TrainConfig, {"colour": 1})
    with pytest.raises(ConfigMismatchError, match="generator.ngf"):
        from_dict(TrainConfig, {"generator": {"ngf": "wide"}})
    with pytest.raises(AttnGANError, match="stages"):
        make_train_config("bird", {"generator.stages": 5})
    with pytest.raises(AttnGANError, match="unknown preset 'flowers'"):
        make_train_config("flowers")


def test_image_sizes_follow_stages() -> None:
    assert image_sizes(GeneratorConfig(stages=4, base_size=64)) == [64, 128, 256, 512]
    assert image_sizes(make_train_config("shapes").generator)[0] == get_preset("shapes").train.generator.base_size


def test_presets_are_typed_and_share_caption_length_and_damsm() -> None:
    assert [*preset_names(), *named_preset_names()] == ["bird", "coco", "shapes", "mirrorgan-bird", "mirrorgan-coco",
                                                            "stackgan-coco-stage2"]
    for name in preset_names():
        p = get_preset(name)
        assert isinstance(p, Preset) and p.name == name == p.train.preset == p.pretrain.preset
        assert p.train == make_train_config(name) and p.pretrain == make_pretrain_config(name)
        assert p.pretrain.damsm == p.train.damsm
        assert p.pretrain.text.words == (15 if "coco" in name else p.train.words)  # coco: its own DAMSM length
        assert p.pretrain.image.image_size == default_image_size(p.pretrain.image.backbone)
    for name in named_preset_names():  # an architecture's named presets start from a dataset preset
        assert new_train_config(name).preset == name
    every = [base_preset(n) for n in [*preset_names(), *named_preset_names()]]
    assert [preset_value(n, "dataset_kind") for n in every] == ["cub", "coco", "shapes", "cub", "coco", "coco"]
    assert [preset_value(n, "captions_per_image") for n in every] == [10, 5, 5, 10, 5, 5]
    shapes = make_pretrain_config("shapes")
    assert (shapes.image.backbone, shapes.image.image_size, shapes.image.width, shapes.group_by) == (
        "compact", 64, 16, ["bg_color", "color"])
    get_preset("bird").train.generator.ngf = 1  # a copy: the preset itself does not change
    assert make_train_config("bird").generator.ngf == 32
    with pytest.raises(AttnGANError, match="no value 'words'"):
        preset_value("bird", "words")


def _definition(**changes) -> dict:
    definition = json.loads(json.dumps(PRESETS["shapes"]))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        section = definition
        for part in parents:
            section = section.setdefault(part, {})
        section[last] = value
    return definition


def test_a_misspelled_preset_key_is_an_error_naming_it() -> None:
    assert build_preset("shapes", _definition()) == get_preset("shapes")
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.lamda_damsm"):
        build_preset("x", _definition(lamda_damsm=1.0))
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.generator\.ngff"):
        build_preset("x", _definition(generator__ngff=8))
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.pretrain\.image\.widht"):
        build_preset("x", _definition(pretrain__image__widht=8))
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.captions_per_image: expected int"):
        build_preset("x", _definition(captions_per_image="five"))
    with pytest.raises(AttnGANError, match=r"^generator\.stages must be"):  # range checks too
        build_preset("x", _definition(generator__stages=9))
    # the values both jobs share are set once, at the top level
    with pytest.raises(ConfigMismatchError, match=r"pretrain: damsm is shared with training"):
        build_preset("x", _definition(pretrain__damsm={"gamma1": 1.0}))
    # the caption length is shared unless the pretraining sets its own (coco: 15 for the DAMSM, 12 for the GAN)
    assert build_preset("x", _definition(words=7)).pretrain.text.words == 7
    own = build_preset("x", _definition(words=7, pretrain__text__words=5))
    assert (own.pretrain.text.words, own.train.words) == (5, 7)


def test_image_size_follows_the_backbone() -> None:
    assert (default_image_size("inception-v3"), default_image_size("compact")) == (299, 64)
    with pytest.raises(AttnGANError, match="got 'resnet'"):
        default_image_size("resnet")
    with pytest.raises(AttnGANError, match="got 'resnet'"):
        make_pretrain_config("shapes", {"image.backbone": "resnet"})
    # a definition without an image size gets its backbone's; one with a size keeps it
    assert build_preset("x", _definition(pretrain__image__backbone="inception-v3")).pretrain.image.image_size == 299
    assert build_preset("x", _definition(pretrain__image__image_size=32)).pretrain.image.image_size == 32


def test_presets_hold_the_captioner_pretraining_too() -> None:
    for name in preset_names():
        p = get_preset(name)
        assert p.captioner == make_caption_pretrain_config(name) and p.captioner.preset == name
    # MirrorGAN's STREAM sizes (embedding 256, LSTM hidden_size * 2 = 512) on the DAMSM's caption lengths;
    # shapes: CPU-sized
    bird, coco, shapes = (make_caption_pretrain_config(n) for n in ("bird", "coco", "shapes"))
    assert (bird.words, coco.words, shapes.words) == (18, 15, 12)
    assert (bird.model.backbone, bird.model.image_size, bird.model.embed_dim, bird.model.hidden_dim) == (
        "inception-v3", 299, 256, 512)
    assert coco.model.hidden_dim == 512
    assert (bird.batch_size, bird.epochs, bird.lr, bird.betas) == (128, 5, 1e-3, (0.9, 0.999))
    assert (shapes.batch_size, shapes.epochs, shapes.lr, shapes.eval_items) == (32, 6, 2e-3, 500)
    assert (shapes.model.backbone, shapes.model.image_size, shapes.model.width, shapes.model.embed_dim,
            shapes.model.hidden_dim) == ("compact", 64, 16, 128, 128)
    for variant, base in (("mirrorgan-bird", bird), ("mirrorgan-coco", coco)):
        assert make_caption_pretrain_config(base_preset(variant)).words == base.words
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.captioner\.modle"):
        build_preset("x", _definition(captioner__modle={}))
    with pytest.raises(ConfigMismatchError, match=r"presets\.x\.captioner\.model\.hiden_dim"):
        build_preset("x", _definition(captioner__model__hiden_dim=8))
    with pytest.raises(AttnGANError, match="unknown preset 'flowers'"):
        make_caption_pretrain_config("flowers")
    with pytest.raises(AttnGANError, match="no value 'captioner'"):
        preset_value("bird", "captioner")
