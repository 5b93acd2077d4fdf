"""The configs as plain dataclasses: the models (text and image encoders, DAMSM loss, generator,
discriminators) and the jobs (DAMSM pretraining, GAN training), each field with its default and, where a
value can be wrong, its allowed range or choices (:mod:`attngan_cli.config.fields`).

There is no global mutable config: every function receives the config object it needs. A config is
built from a preset (:mod:`attngan_cli.config.presets`) plus overrides (the CLI flags), written as
``config.json`` into the run directory and stored inside every checkpoint
(:mod:`attngan_cli.config.serialize`), so a model can be rebuilt from its checkpoint alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attngan_cli.config.fields import Choices, bounded, one_of, satisfying, seed_field
from attngan_cli.core.errors import FieldError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 where the hardware computes it (device.py)

FROZEN_BN_MODES = ("train", "eval")

# The input size of each image backbone: Inception-v3's 299 px (the paper), the compact CNN's 64 px.
BACKBONE_IMAGE_SIZES = {"inception-v3": 299, "compact": 64}


def default_image_size(backbone: str, field_name: str = "image.backbone") -> int:
    """The image size a backbone is used at unless a config says otherwise (see ImageEncoderConfig);
    an unknown backbone is a :class:`FieldError` naming ``field_name``."""
    problem = Choices(tuple(BACKBONE_IMAGE_SIZES)).problem(backbone)
    if problem is not None:
        raise FieldError(field_name, problem)
    return BACKBONE_IMAGE_SIZES[backbone]


def adam_betas(betas: tuple[float, float]) -> bool:
    """Adam's betas: two numbers in [0, 1) (:data:`BETAS_RULE`)."""
    return len(betas) == 2 and all(0 <= b < 1 for b in betas)


def _power_of_two_from_8(n: int) -> bool:
    return isinstance(n, int) and n >= 8 and not n & (n - 1)


BETAS_RULE = "two numbers in [0, 1)"  # Adam's betas, checked by adam_betas


# --------------------------------------------------------------------------------------------------
# Model configs
# --------------------------------------------------------------------------------------------------
@dataclass
class TextEncoderConfig:
    vocab_size: int = 0  # filled from the dataset's vocabulary
    word_dim: int = bounded(300, low=1)  # word embedding size
    embedding_dim: int = bounded(256, low=2)  # word/sentence feature size (bidirectional: 128 per direction)
    dropout: float = bounded(0.5, low=0, high=1)
    words: int = bounded(18, low=1)  # caption length used in training (longer captions are subsampled)


@dataclass
class ImageEncoderConfig:
    # "inception-v3" (paper) or "compact" (CPU-sized, trained from scratch)
    backbone: str = one_of("inception-v3", BACKBONE_IMAGE_SIZES)
    embedding_dim: int = bounded(256, low=1)
    image_size: int = bounded(299, low=8)  # input size of the backbone
    width: int = bounded(64, low=1)  # channel width of the compact backbone (ignored by inception-v3)
    # compact only: 2 = coordinate channels, conv + max-pool stages, global feature from the flattened
    # last map (knows where things are and what shape they have); 1 = strided convs, mean-pooled global
    # (what a format_version 1 DAMSM config without this field means)
    compact_version: int = one_of(2, (1, 2))
    # inception-v3 only. BatchNorm of the frozen Inception layers while pretraining: "train" = the official
    # pretrain_DAMSM.py (cnn_model.train(): batch statistics, running statistics move to the dataset's
    # images and are saved with the encoder; the weights stay frozen); "eval" = keep the loaded (ImageNet)
    # statistics (the default, and what --cache-features uses). Outside pretraining the encoder is in
    # eval mode and uses the running statistics either way.
    frozen_bn: str = one_of("eval", FROZEN_BN_MODES)
    # the bilinear resize of other sizes to image_size: the official nn.Upsample(size=(299, 299),
    # mode='bilinear') was written for PyTorch 0.3, whose bilinear mode aligned corners; imported official
    # encoders set True so that they see what they were trained on
    resize_align_corners: bool = False


@dataclass
class DAMSMConfig:
    gamma1: float = bounded(4.0, low=0, low_inclusive=False)  # word-to-region attention sharpness
    gamma2: float = bounded(5.0, low=0, low_inclusive=False)  # region-context aggregation
    gamma3: float = bounded(10.0, low=0, low_inclusive=False)  # posterior smoothing over the batch


@dataclass
class GeneratorConfig:
    arch: str = "attngan"  # the architecture (see attngan_cli.archs.registry; --arch)
    stages: int = bounded(3, low=1, high=4)  # images of base_size * scale**i for i < stages (scale: the architecture's stage_scale)
    base_size: int = satisfying(64, _power_of_two_from_8, "a power of two >= 8")
    ngf: int = bounded(32, low=1)
    r_num: int = bounded(2, low=0)  # residual blocks per attentional stage
    z_dim: int = bounded(100, low=1)
    condition_dim: int = bounded(100, low=1)
    embedding_dim: int = bounded(256, low=1)
    # the architecture's variant of its networks ("" = its first one, what checkpoints written before the
    # field existed hold): --arch stackgan reads "pytorch" / "pytorch-tf-d" / "glu" (its --arch-option networks)
    variant: str = ""

    def sizes(self, scale: int) -> list[int]:
        """The image size of every stage when each is ``scale`` times the one before (the architecture's
        ``stage_scale``: :func:`attngan_cli.archs.registry.image_sizes`)."""
        return [self.base_size * scale**i for i in range(self.stages)]


@dataclass
class DiscriminatorConfig:
    ndf: int = bounded(64, low=1)
    embedding_dim: int = 256
    spectral_norm: bool = False  # DM-GAN's spectral-norm discriminators, no BatchNorm (--spectral-norm: TISE's AttnGAN++)


# --------------------------------------------------------------------------------------------------
# Job configs
# --------------------------------------------------------------------------------------------------
@dataclass
class RunOptions:
    """How a training job runs, whatever it trains: shared by the GAN, DAMSM and captioner jobs, whose
    configs inherit these fields (stored flat at the top level of config.json and of checkpoints)."""

    max_minutes: float = bounded(0.0, low=0)  # 0 = no limit; otherwise end (with the final checkpoint) after this long
    precision: str = one_of("auto", PRECISIONS)
    workers: int = bounded(0, low=0)  # DataLoader worker processes (0 = load in the main process)
    seed: int = seed_field()
    device: str = "auto"
    tensorboard: bool = True  # TensorBoard events in the run directory (when the package is installed)


@dataclass
class PretrainConfig(RunOptions):
    preset: str = "bird"
    dataset: str = ""
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    damsm: DAMSMConfig = field(default_factory=DAMSMConfig)
    batch_size: int = bounded(48, low=1)
    epochs: int = bounded(600, low=1)
    lr: float = bounded(0.002, low=0, low_inclusive=False)
    betas: tuple[float, float] = satisfying((0.5, 0.999), adam_betas, BETAS_RULE)
    lr_decay: float = bounded(0.98, low=0, high=1, low_inclusive=False)  # multiplied in once per epoch ...
    min_lr_fraction: float = bounded(0.1, low=0, high=1)  # ... down to lr * this
    grad_clip: float = bounded(0.25, low=0, low_inclusive=False)  # gradient-norm clip on the text encoder
    snapshot_every: int = bounded(50, low=0)  # epochs
    # a new Adam at every epoch start (moments reset), as the official pretrain_DAMSM.py; False = one Adam
    # for the whole run. A resume in the middle of an epoch continues that epoch's saved Adam.
    adam_per_epoch: bool = False
    # cache frozen Inception features of fixed augmented views: a faster mode (17x on a CPU) that departs
    # from the official pretraining: the frozen layers use eval-mode BatchNorm (image.frozen_bn = "eval")
    cache_features: bool = False
    # micro-batches per step (gradients add up); the DAMSM negatives are then a micro-batch
    grad_accum: int = bounded(1, low=1)
    # stored attributes (shapes data) that group_share of every batch agrees on: hard negatives for the
    # attributes not named (see data/sampling.py); empty = random batches, as the paper
    group_by: list[str] = field(default_factory=list)
    group_share: float = bounded(0.5, low=0, high=1)


@dataclass
class TrainEvalConfig:
    """Evaluation during GAN training (``--eval-every``): the EMA generator scored on a held-out split
    every ``every`` steps, ``best.pt`` kept by ``best_metric`` (see attngan_cli.training.evaluation)."""

    every: int = bounded(0, low=0)  # steps between evaluations (0 = none)
    metrics: list[str] = field(default_factory=lambda: ["rprecision"])  # names of attngan_cli.evaluation.registry
    samples: int = bounded(2000, low=1)  # images generated per evaluation
    best_metric: str = ""  # the metric best.pt is kept by ("" = the first of metrics)
    split: str = "test"  # the held-out split of the dataset
    batch_size: int = bounded(50, low=1)
    inception_weights: str = ""  # the TF-Inception weights file IS and FID need (as attngan eval --inception-weights)
    encoders: str = ""  # the DAMSM R-precision uses ("" = the one training uses)
    seed: int = seed_field()  # the captions and noise of every evaluation (the same at every step)


@dataclass
class TrainConfig(RunOptions):
    preset: str = "bird"
    dataset: str = ""
    encoders: str = ""  # DAMSM checkpoint (file or pretrain run directory)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    damsm: DAMSMConfig = field(default_factory=DAMSMConfig)
    words: int = bounded(18, low=1)
    lambda_damsm: float = bounded(5.0, low=0)
    kl_weight: float = bounded(1.0, low=0)
    # MirrorGAN's STREAM: a pretrained captioner (file or run directory; "" = none) and the weight of its
    # re-description loss (the paper's lambda, 20); see attngan_cli.archs.stream
    captioner: str = ""
    stream_weight: float = bounded(20.0, low=0)
    # False: the re-description loss scores each caption's words, as MirrorGAN's generator_loss
    # (pack_padded_sequence over the words); True: also the <end> after them (what runs saved before this
    # field did, and what a resumed one of them keeps)
    stream_end_target: bool = False
    mismatch: bool = True  # the official extra D term on (real image, wrong sentence)
    # weight of StackGAN++'s colour-consistency term (0 = off; --color-consistency)
    color_consistency: float = bounded(0.0, low=0)
    init: str = ""  # StackGAN Stage-II (--arch-option stage=2): the finished Stage-I run (its final.pt) Stage-II starts from
    arch_options: dict[str, Any] = field(default_factory=dict)  # the architecture's own options (--arch-option)
    batch_size: int = bounded(20, low=1)
    epochs: int = bounded(600, low=1)
    max_steps: int = bounded(0, low=0)  # 0 = no limit; otherwise stop after this many generator steps
    lr_g: float = bounded(2e-4, low=0, low_inclusive=False)
    lr_d: float = bounded(2e-4, low=0, low_inclusive=False)
    betas: tuple[float, float] = satisfying((0.5, 0.999), adam_betas, BETAS_RULE)
    ema_decay: float = bounded(0.999, low=0, high=1)
    # both learning rates halve every this many epochs (0 = constant): StackGAN's LR_DECAY_EPOCH
    lr_halve_every: int = bounded(0, low=0)
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False  # under torchrun on GPUs: SyncBatchNorm in G and the Ds (default: per-process BatchNorm)
    grad_accum: int = bounded(1, low=1)  # micro-batches per step (gradients add up): the same total batch in less memory
    snapshot_every: int = bounded(50, low=0)  # epochs
    sample_every: int = bounded(500, low=0)  # steps
    keep_last: int = bounded(3, low=0)
    evaluation: TrainEvalConfig = field(default_factory=TrainEvalConfig)
