"""StackGAN and StackGAN++ against their official code (issue 30): StackGAN-v2's six-term discriminator
loss and its generator loss written out on fixed tensors, the StackGAN-Pytorch networks (parameter counts
of the official modules at the bird and COCO configurations, counted on the meta device), the COCO
presets of ``coco_s1.yml`` / ``coco_s2.yml``, no EMA in StackGAN, and the old networks of runs written
before the variants.

The official parameter counts were taken from the official modules (hanzhanggit/StackGAN-Pytorch
``code/model.py`` at e72ef88, built with TEXT.DIMENSION 256, the DAMSM sentence size, instead of the
char-CNN-RNN's 1024); the project's discriminators add the ``compress`` linear (256 -> 128 + bias =
32,896 parameters, listed in docs/differences.md).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attngan_cli.archs.attngan.loss import AttnGANLoss, DiscriminatorLoss, GeneratorLoss
from attngan_cli.archs.base import LossContext, SettingsContext, TextBatch
from attngan_cli.archs.registry import get_arch, new_train_config
from attngan_cli.archs.stackgan import stage_two_lr_schedule
from attngan_cli.archs.stackgan.blocks import ReluCANet, init_normal
from attngan_cli.archs.stackgan.networks import StackGANGenerator, stackgan_discriminators
from attngan_cli.archs.stackgan.schedule import init_from_stage_one
from attngan_cli.archs.stackganpp import (
    StackGANppDiscriminatorLoss,
    check_settings,
    make_loss,
    stackganpp_discriminators,
    wrong_index,
)
from attngan_cli.config.schema import DiscriminatorConfig, GeneratorConfig, TrainConfig
from attngan_cli.core.errors import AttnGANError, InputError
from attngan_cli.networks.blocks import GLU
from attngan_cli.storage.checkpoints import GAN_KIND, Checkpoint, save_checkpoint
from attngan_cli.training.ema import EMA
from attngan_cli.training.gan import GANTask, epoch_lr, set_epoch_lrs

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

EMB = 12
COMPRESS = 256 * 128 + 128  # the project's D linear on the 256-d sentence (the port tiles CA's mu instead)

# StackGAN-Pytorch's modules at TEXT.DIMENSION 256 (see the module docstring)
OFFICIAL_BIRD = {"stage1_g": 10_104_640, "stage2_g": 26_093_472, "stage1_d": 5_715_713, "stage2_d": 71_269_122}
OFFICIAL_COCO = {"stage1_g": 19_824_224, "stage2_g": 36_933_872, "stage1_d": 12_407_425, "stage2_d": 159_889_538}
# what --arch stackgan built before the variants (GLU blocks; Stage-II D without the unconditional head)
LEGACY_BIRD = {"stage1_g": 20_207_552, "stage2_g": 37_168_224, "stage1_d": 5_748_609, "stage2_d": 71_293_825}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _preset_counts(preset: str, variant: str | None = None) -> dict[str, int]:
    """The parameter counts of the StackGAN networks a preset builds, on the meta device (no memory)."""
    arch = get_arch("stackgan")
    over = {"generator.arch": "stackgan"} if preset in arch.presets else {}
    cfg = new_train_config(preset, {**over, **({"generator.variant": variant} if variant is not None else {})})
    g2 = dataclasses.replace(cfg.generator, stages=2)
    with torch.device("meta"):
        G = StackGANGenerator(g2, init=False)
        d1 = stackgan_discriminators(dataclasses.replace(g2, stages=1), cfg.discriminator, init=False)
        d2 = stackgan_discriminators(g2, cfg.discriminator, init=False)
    return {"stage1_g": _count(G.stage1), "stage2_g": _count(G.stage2), "stage1_d": _count(d1),
            "stage2_d": _count(d2)}


# --------------------------------------------------------------------------------------------------
# StackGAN++: StackGAN-v2's objective (code/trainer.py, condGANTrainer.train_Dnet / train_Gnet)
# --------------------------------------------------------------------------------------------------
def test_wrong_index_picks_the_next_sample_of_another_class() -> None:
    assert wrong_index(torch.tensor([1, 1, 2, 3, 3])).tolist() == [2, 2, 3, 0, 0]
    assert wrong_index(torch.tensor([4, 4, 4])).tolist() == [1, 2, 0]  # one class: the next sample
    assert wrong_index(torch.tensor([0, 1, 2, 3])).tolist() == [1, 2, 3, 0]  # COCO: a class per image


def _bce(p: torch.Tensor, label: float) -> torch.Tensor:
    """The official criterion: nn.BCELoss on the sigmoid outputs."""
    return nn.BCELoss()(p, torch.full_like(p, label))


C = 6  # condition_dim of the tiny networks


def _tiny_cfg(**over: object) -> TrainConfig:
    return new_train_config("bird", {"generator.arch": "stackgan++", "generator.stages": 1, "generator.base_size": 8,
                                     "generator.condition_dim": C, "generator.embedding_dim": EMB,
                                     "discriminator.ndf": 4, "discriminator.embedding_dim": EMB, **over})


def _tiny_d(cfg: TrainConfig) -> nn.Module:
    torch.manual_seed(0)
    return stackganpp_discriminators(cfg.generator, cfg.discriminator)[0].eval()


def _text(sent: torch.Tensor, class_ids: torch.Tensor, cond: torch.Tensor | None = None) -> TextBatch:
    B = sent.shape[0]
    return TextBatch(torch.zeros(B, EMB, 5), sent, None, sent.roll(-1, 0), torch.zeros(B, 5, dtype=torch.long),
                     torch.full((B,), 5), class_ids, cond)


CPU = LossContext(torch.device("cpu"), None, [])


def test_stackganpp_d_loss_is_the_official_six_terms() -> None:
    """StackGAN-v2 trainer.py train_Dnet with UNCOND_LOSS 1: the conditional heads on mu.detach()."""
    cfg = _tiny_cfg()
    assert cfg.generator.variant == "mu" and cfg.arch_options == {}
    D = _tiny_d(cfg)
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    sent, mu = torch.randn(4, EMB, generator=g), torch.randn(4, C, generator=g)
    class_ids = torch.tensor([7, 7, 3, 5])
    wrong = real[[2, 2, 3, 0]]  # the next sample of another class

    def cond(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(D.cond_logits(D(x), mu))

    def uncond(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(D.uncond_logits(D(x)))

    U = 1.0  # UNCOND_LOSS of birds_3stages.yml
    official = (_bce(cond(real), 1) + _bce(cond(wrong), 0) + _bce(cond(fake), 0)
                + U * _bce(uncond(real), 1) + U * _bce(uncond(wrong), 1) + U * _bce(uncond(fake), 0))
    loss = make_loss(cfg, CPU)
    ours = loss.discriminator(D, real, fake, _text(sent, class_ids, mu)).total
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)
    # the old averaged five-term loss with a mismatched condition is not it
    old = DiscriminatorLoss(True)(D, real, fake, mu, mu.roll(-1, 0)).total
    assert (old - official).abs() > 1e-2
    # --no-mismatch: the four terms without the wrong image
    no_wrong = StackGANppDiscriminatorLoss(mismatch=False).official(D, real, fake, mu, class_ids).total
    four = _bce(cond(real), 1) + _bce(cond(fake), 0) + _bce(uncond(real), 1) + _bce(uncond(fake), 0)
    torch.testing.assert_close(no_wrong, four, rtol=1e-5, atol=1e-6)


def test_stackganpp_g_loss_is_the_official_one() -> None:
    """StackGAN-v2 train_Gnet: sum over stages of BCE(cond(G, mu), 1) + UNCOND_LOSS * BCE(uncond(G), 1), +
    KL * 2, with KL = mean(-0.5 (1 + logvar - mu^2 - exp(logvar))) (miscc/utils.py:KL_loss); mu is not
    detached, so the conditional heads' gradient reaches the CA net."""
    cfg = _tiny_cfg()
    D = _tiny_d(cfg)
    g = torch.Generator().manual_seed(2)
    fake, sent = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, EMB, generator=g)
    mu, logvar = torch.randn(4, C, generator=g).requires_grad_(), torch.randn(4, C, generator=g)
    loss = make_loss(cfg, CPU)
    out = type("Out", (), {"images": [fake], "mu": mu, "logvar": logvar})()
    ours = loss.generator([D], out, _text(sent, torch.arange(4))).total
    code = D(fake)
    kl = torch.mean(-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()))
    official = (_bce(torch.sigmoid(D.cond_logits(code, mu)), 1) + _bce(torch.sigmoid(D.uncond_logits(code)), 1)
                + cfg.kl_weight * kl)
    assert cfg.kl_weight == 2.0
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)
    adv_only = ours - cfg.kl_weight * kl  # the adversarial terms alone still train mu (CA)
    (grad,) = torch.autograd.grad(adv_only, mu, retain_graph=True)
    assert grad.abs().sum() > 0
    (ref,) = torch.autograd.grad(official, mu, retain_graph=True)
    torch.testing.assert_close(torch.autograd.grad(ours, mu)[0], ref)


def test_stackganpp_discriminators_match_the_official_sizes() -> None:
    """D_NET64/128/256 of StackGAN-v2 at birds_3stages.yml (EMBEDDING_DIM 128, DF_DIM 64): conditioned on
    mu, the project's are the same size; conditioned on the 256-d sentence (old runs) 589,824 larger."""
    official = [5_723_906, 18_834_178, 71_269_122]
    for variant, extra in (("mu", 0), ("", 589_824), ("sentence", 589_824)):
        cfg = new_train_config("bird", {"generator.arch": "stackgan++", "generator.variant": variant})
        with torch.device("meta"):
            Ds = stackganpp_discriminators(cfg.generator, cfg.discriminator, init=False)
        assert [_count(d) for d in Ds] == [n + extra for n in official], variant


def test_stackganpp_old_loss_and_sentence_condition_give_the_old_objective() -> None:
    """loss=attngan with d_condition=sentence (what runs before the options record) is AttnGAN's loss."""
    cfg = _tiny_cfg(**{"generator.variant": ""})
    cfg = dataclasses.replace(cfg, arch_options={"loss": "attngan"})
    D = _tiny_d(cfg)
    g = torch.Generator().manual_seed(3)
    real, fake, sent = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, EMB, generator=g)
    text = _text(sent, torch.arange(4), torch.randn(4, C, generator=g))
    old = AttnGANLoss(DiscriminatorLoss(True), GeneratorLoss(0.0, 2.0))
    torch.testing.assert_close(make_loss(cfg, CPU).discriminator(D, real, fake, text).total,
                               old.discriminator(D, real, fake, text).total)


def test_stackganpp_loss_option_and_what_runs_record() -> None:
    arch = get_arch("stackgan++")
    cfg = new_train_config("bird", {"generator.arch": "stackgan++"})
    settings = SettingsContext(False, [], None)  # type: ignore[arg-type]
    assert check_settings(cfg, settings).arch_options == {"loss": "stackgan++"}  # a new run records the default
    resumed = SettingsContext(True, [], None)  # type: ignore[arg-type]
    assert check_settings(cfg, resumed).arch_options == {"loss": "attngan"}  # a run made before the option
    given = dataclasses.replace(cfg, arch_options={"loss": "attngan"})
    assert check_settings(given, settings).arch_options == {"loss": "attngan"}
    with pytest.raises(InputError, match="loss must be"):
        arch.option_values({"loss": "average"})


# --------------------------------------------------------------------------------------------------
# StackGAN: StackGAN-Pytorch's networks and COCO settings
# --------------------------------------------------------------------------------------------------
def test_coco_presets_are_coco_s1_and_coco_s2() -> None:
    s1 = new_train_config("coco", {"generator.arch": "stackgan"})
    assert (s1.generator.ngf, s1.discriminator.ndf, s1.batch_size, s1.epochs) == (96, 96, 128, 120)  # GF 192, DF 96
    assert (s1.generator.condition_dim, s1.kl_weight, s1.lr_g, s1.lr_d) == (128, 2.0, 2e-4, 2e-4)
    s2 = new_train_config("stackgan-coco-stage2", {})
    assert s2.generator.arch == "stackgan" and s2.preset == "stackgan-coco-stage2"
    assert (s2.generator.stages, s2.generator.ngf, s2.discriminator.ndf, s2.generator.r_num) == (2, 96, 96, 2)
    assert (s2.batch_size, s2.epochs) == (40, 100)
    assert s1.lr_halve_every == s2.lr_halve_every == 20  # LR_DECAY_EPOCH
    assert stage_two_lr_schedule(s2).lr_halve_every == 20


def test_stage_presets_refused_for_the_other_stage() -> None:
    ctx = SettingsContext(False, [], None)  # type: ignore[arg-type]
    s1 = new_train_config("coco", {"generator.arch": "stackgan", "generator.stages": 2})
    with pytest.raises(InputError, match="--preset stackgan-coco-stage2"):
        get_arch("stackgan").check_settings(s1, ctx)
    s2 = new_train_config("stackgan-coco-stage2", {"generator.stages": 1})
    with pytest.raises(InputError, match="train Stage-I with --preset coco"):
        get_arch("stackgan").check_settings(s2, ctx)


def test_bird_learning_rate_halving_per_stage(monkeypatch) -> None:
    """TensorFlow StackGAN: LR_DECAY_EPOCH 50 (stageI/cfg/birds.yml), 100 (stageII/cfg/birds.yml)."""
    one = new_train_config("bird", {"generator.arch": "stackgan"})
    two = new_train_config("bird", {"generator.arch": "stackgan", "generator.stages": 2})
    assert one.lr_halve_every == 50 and stage_two_lr_schedule(one).lr_halve_every == 50
    assert stage_two_lr_schedule(two).lr_halve_every == 100
    monkeypatch.setattr("attngan_cli.archs.stackgan.check_stage_schedule", lambda cfg, *args: cfg)  # no --init here
    checked = get_arch("stackgan").check_settings(two, SettingsContext(False, [], SimpleNamespace(state={})))  # type: ignore[arg-type]
    assert checked.lr_halve_every == 100
    assert new_train_config("bird", {"generator.arch": "attngan"}).lr_halve_every == 0


def test_learning_rates_halve_every_n_epochs() -> None:
    """StackGAN-Pytorch trainer.py: ``if epoch % lr_decay_step == 0 and epoch > 0: lr *= 0.5`` at every epoch
    start; here a function of the epoch, so a resumed run (start_epoch re-entered) gets the same rates."""
    assert [epoch_lr(2e-4, 20, e) for e in (0, 19, 20, 39, 40, 119)] == [2e-4, 2e-4, 1e-4, 1e-4, 5e-5, 2e-4 / 32]
    assert epoch_lr(2e-4, 0, 500) == 2e-4
    G, D = nn.Linear(2, 2), nn.Linear(2, 2)
    m = SimpleNamespace(opt_g=torch.optim.Adam(G.parameters(), 1.0), opt_ds=[torch.optim.Adam(D.parameters(), 1.0)])
    cfg = dataclasses.replace(new_train_config("coco", {"generator.arch": "stackgan"}), lr_g=2e-4, lr_d=4e-4)
    set_epoch_lrs(m, cfg, 45)  # type: ignore[arg-type]
    assert m.opt_g.param_groups[0]["lr"] == 5e-5 and m.opt_ds[0].param_groups[0]["lr"] == 1e-4
    # the training task sets them at every epoch start (and on resume, when the loop re-enters the epoch)
    task = SimpleNamespace(models=SimpleNamespace(**vars(m), G=G, Ds=nn.ModuleList([D])), cfg=cfg)
    GANTask.start_epoch(task, 20)  # type: ignore[arg-type]
    assert m.opt_g.param_groups[0]["lr"] == 1e-4 and m.opt_ds[0].param_groups[0]["lr"] == 2e-4


@pytest.mark.parametrize(("preset", "official"), [("bird", OFFICIAL_BIRD), ("coco", OFFICIAL_COCO)])
def test_parameter_counts_match_the_official_modules(preset: str, official: dict[str, int]) -> None:
    counts = _preset_counts("stackgan-coco-stage2" if preset == "coco" else preset)
    if preset == "coco":
        counts["stage1_g"] = _preset_counts("coco")["stage1_g"]
    assert counts == {**official, "stage1_d": official["stage1_d"] + COMPRESS,
                      "stage2_d": official["stage2_d"] + COMPRESS}


def test_glu_variant_keeps_the_networks_of_old_runs() -> None:
    assert _preset_counts("bird", "") == LEGACY_BIRD
    assert _preset_counts("bird", "glu") == LEGACY_BIRD
    assert _preset_counts("bird", "pytorch-tf-d")["stage2_d"] == OFFICIAL_BIRD["stage2_d"] + COMPRESS - 8193
    with pytest.raises(AttnGANError, match="generator.variant 'relu'"):
        _preset_counts("bird", "relu")


def _tiny(stages: int, variant: str) -> GeneratorConfig:
    return GeneratorConfig(arch="stackgan", stages=stages, base_size=8, ngf=8, r_num=1, z_dim=10, condition_dim=6,
                           embedding_dim=EMB, variant=variant)


def test_pytorch_networks_layers_and_init() -> None:
    torch.manual_seed(0)
    G = StackGANGenerator(_tiny(2, "pytorch"))
    acts = {type(m) for m in G.modules()}
    assert GLU not in acts and nn.LeakyReLU not in acts and nn.ReLU in acts  # ReLU blocks, encoder and joint
    assert isinstance(G.stage1.ca_net, ReluCANet) and G.stage1.ca_net.fc.out_features == 2 * 6  # fc -> 2c, ReLU
    _, mu, logvar = G.stage1.ca_net(torch.randn(64, EMB), noise=False)
    assert (mu >= 0).all() and (logvar >= 0).all()
    convs = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.Conv2d)])
    assert abs(convs.std().item() - 0.02) < 2e-3  # N(0, 0.02), not orthogonal
    D2 = stackgan_discriminators(_tiny(2, "pytorch"), DiscriminatorConfig(ndf=4, embedding_dim=EMB))[0]
    assert D2.uncond_logits(D2(torch.randn(2, 3, 32, 32))).shape == (2,)  # STAGE2_D's unconditional head
    D1 = stackgan_discriminators(_tiny(1, "pytorch"), DiscriminatorConfig(ndf=4, embedding_dim=EMB))[0]
    assert not hasattr(D1, "UNCOND_DNET")  # STAGE1_D has none
    tf = stackgan_discriminators(_tiny(2, "pytorch-tf-d"), DiscriminatorConfig(ndf=4, embedding_dim=EMB))[0]
    assert not hasattr(tf, "UNCOND_DNET")


def test_init_normal_is_weights_init() -> None:
    torch.manual_seed(0)
    m = init_normal(nn.Sequential(nn.Linear(300, 400), nn.BatchNorm2d(500)))
    assert abs(m[0].weight.std().item() - 0.02) < 1e-3 and not m[0].bias.any()
    assert abs(m[1].weight.mean().item() - 1.0) < 5e-3 and not m[1].bias.any()


def test_stage_two_losses_follow_the_discriminator_heads() -> None:
    ctx = LossContext(torch.device("cpu"), None, [])
    base = new_train_config("bird", {"generator.arch": "stackgan"})
    two = dataclasses.replace(base, generator=dataclasses.replace(base.generator, stages=2))
    assert get_arch("stackgan").make_loss(two, ctx).d.unconditional  # the port's (cr + ur)/2 + (cf + cw + uf)/3
    assert not get_arch("stackgan").make_loss(base, ctx).d.unconditional  # Stage-I: cr + (cf + cw)/2
    tf = dataclasses.replace(two, generator=dataclasses.replace(two.generator, variant="pytorch-tf-d"))
    assert not get_arch("stackgan").make_loss(tf, ctx).g.unconditional


def test_stackgan_keeps_no_ema() -> None:
    """ema_decay 0: the 'EMA' generator that samples and eval use is the trained generator itself."""
    cfg = new_train_config("bird", {"generator.arch": "stackgan"})
    assert cfg.ema_decay == 0.0
    torch.manual_seed(0)
    G = StackGANGenerator(_tiny(1, "pytorch"))
    ema = EMA(G, cfg.ema_decay)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
    ema.update(G, step=1000)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.state_dict().values(), G.state_dict().values(),
                                                    strict=True))


def test_pytorch_stage_two_shapes_and_frozen_stage_one() -> None:
    torch.manual_seed(0)
    G = StackGANGenerator(_tiny(2, "pytorch"))
    out = G(torch.randn(3, 10), torch.randn(3, EMB))
    assert [tuple(x.shape) for x in out.images] == [(3, 3, 8, 8), (3, 3, 32, 32)]
    F.mse_loss(out.images[1], torch.zeros_like(out.images[1])).backward()
    assert all(p.grad is None for p in G.stage1.parameters())  # frozen Stage-I
    assert all(p.grad is not None for p in G.stage2.parameters())


def test_stage_two_starts_from_stage_one_raw_weights(tmp_path) -> None:
    """Stage-II copies the Stage-I generator's trained weights, not its EMA (the official STAGE2_G loads
    netG_epoch_*.pth), also from a Stage-I run that kept an EMA."""
    torch.manual_seed(0)
    one = StackGANGenerator(_tiny(1, "pytorch"))
    raw = {f"stage1.{k}": v for k, v in one.stage1.state_dict().items()}
    averaged = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    path = save_checkpoint(Checkpoint(GAN_KIND, {}, {"generator": raw, "generator_ema": averaged}), tmp_path / "final.pt")
    G, G_ema = StackGANGenerator(_tiny(2, "pytorch")), StackGANGenerator(_tiny(2, "pytorch"))
    init_from_stage_one(G, G_ema, path)
    for module in (G, G_ema):
        got = module.stage1.state_dict()
        assert all(torch.equal(got[k[len("stage1."):]], v) for k, v in raw.items())


@pytest.mark.parametrize("name", ["stackgan1", "stackgan2", "stackganpp"])
def test_old_checkpoints_rebuild_their_networks_and_objective(name: str) -> None:
    """The format-1 checkpoints (written before the variants) record no generator.variant: they rebuild
    the old networks, every weight (G, EMA, Ds) loading strictly, and a resumed StackGAN++ run keeps
    AttnGAN's loss on the sentence-conditioned discriminators."""
    from pathlib import Path

    from attngan_cli.archs.registry import build_discriminators, build_generator
    from attngan_cli.config.serialize import from_dict
    from attngan_cli.storage.checkpoints import load_checkpoint

    ckpt = load_checkpoint(Path(__file__).parents[1] / "fixtures" / "format1" / f"{name}.pt")
    cfg = from_dict(TrainConfig, ckpt.config)
    assert cfg.generator.variant == "" and cfg.ema_decay == 0.999
    for key in ("generator", "generator_ema"):
        build_generator(cfg.generator, init=False).load_state_dict(ckpt.state[key])
    Ds = build_discriminators(cfg.generator, cfg.discriminator, init=False)
    assert len(Ds) == len(ckpt.state["discriminators"])
    for i, D in enumerate(Ds):
        D.load_state_dict(ckpt.state["discriminators"][str(i)])
    if name == "stackganpp":
        resumed = check_settings(cfg, SettingsContext(True, [], None))  # type: ignore[arg-type]
        loss = make_loss(resumed, CPU)
        assert resumed.arch_options == {"loss": "attngan"} and not loss.official and not loss.on_mu


def test_a_resumed_run_keeps_its_networks() -> None:
    """generator.variant sets weight shapes: a resume that asks for other networks is refused by name."""
    from pathlib import Path

    from attngan_cli.config.serialize import from_dict
    from attngan_cli.core.errors import ConfigMismatchError
    from attngan_cli.storage.checkpoints import check_checkpoint_config, load_checkpoint
    from attngan_cli.training.resolve import GAN_RESUME_FIELDS

    ckpt = load_checkpoint(Path(__file__).parents[1] / "fixtures" / "format1" / "stackgan2.pt")
    cfg = from_dict(TrainConfig, ckpt.config)
    check_checkpoint_config(ckpt, cfg, GAN_RESUME_FIELDS)
    other = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, variant="pytorch"))
    with pytest.raises(ConfigMismatchError, match="generator.variant is '' there but 'pytorch' was requested"):
        check_checkpoint_config(ckpt, other, GAN_RESUME_FIELDS)
