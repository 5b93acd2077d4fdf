"""Each architecture's published settings, applied over the dataset's preset (:data:`attngan_cli.config.presets.PRESETS`).

A new ``attngan train --arch A`` run starts from the preset (chosen from the data, or ``--preset``), then
``ARCH_OVERRIDES[A][preset]`` (dotted config keys), then the command-line flags; so ``--arch stackgan++``
on CUB gives StackGAN-v2's ``birds_3stages.yml`` and flags still win. AttnGAN's values are the presets
themselves. Where a paper published no configuration for a dataset (COCO for both baselines), its bird
values are used; the shapes entries change only what the architecture needs and keep the shapes preset's
CPU-sized learning rates, so the demo comparison trains every architecture on the same budget.

Both baselines default to ``lambda_damsm = 0`` (the papers have no DAMSM); ``--lambda 5`` on
``stackgan++`` is AttnGAN's "without attention" ablation.
"""

from __future__ import annotations

from typing import Any

# StackGAN-v2 code/cfg/birds_3stages.yml + code/miscc/config.py: batch 24, Adam 2e-4 (G and D), KL 2.0,
# GAN.EMBEDDING_DIM (condition) 128, GF_DIM 64 (channels at 64 px; halved at every next stage), DF_DIM 64,
# R_NUM 2, 3 branches, 600 epochs, COLOR_LOSS 0 (the regulariser was used on the unconditional datasets).
_STACKGANPP_BIRD: dict[str, Any] = {
    "generator.stages": 3, "generator.base_size": 64, "generator.ngf": 64, "generator.r_num": 2,
    "generator.condition_dim": 128, "discriminator.ndf": 64, "batch_size": 24, "epochs": 600,
    "lr_g": 2e-4, "lr_d": 2e-4, "kl_weight": 2.0, "lambda_damsm": 0.0, "color_consistency": 0.0,
}

# StackGAN stageI/cfg/birds.yml and stageII/cfg/birds.yml: batch 64, Adam 2e-4, KL 2.0, EMBEDDING_DIM
# (condition) 128, GF_DIM 128 (Stage-I: 8 * 128 channels at 4x4, 64 at 64 px: ngf 64; Stage-II: 4 * 128 =
# 8 ngf channels at 16x16), DF_DIM 64, 4 residual blocks in Stage-II, 600 epochs per stage (Stage-II's
# MAX_EPOCH 1200 counts Stage-I's 600). Not reproduced: the learning rate halving every 50 (Stage-I) or
# 100 (Stage-II) epochs.
_STACKGAN_BIRD: dict[str, Any] = {
    "generator.stages": 1, "generator.base_size": 64, "generator.ngf": 64, "generator.r_num": 4,
    "generator.condition_dim": 128, "discriminator.ndf": 64, "batch_size": 64, "epochs": 600,
    "lr_g": 2e-4, "lr_d": 2e-4, "kl_weight": 2.0, "lambda_damsm": 0.0,
}

ARCH_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "stackgan++": {
        "bird": _STACKGANPP_BIRD,
        "coco": {**_STACKGANPP_BIRD, "epochs": 120},  # no published COCO cfg; the coco preset's epochs
        # twice the shapes ngf at the first stage, as GF_DIM 64 is twice AttnGAN's bird ngf 32: 32, 16, 8 channels
        "shapes": {"generator.ngf": 32, "kl_weight": 2.0, "lambda_damsm": 0.0},
    },
    "stackgan": {
        "bird": _STACKGAN_BIRD,
        "coco": {**_STACKGAN_BIRD, "epochs": 120},  # no published COCO cfg; the coco preset's epochs
        "shapes": {"generator.stages": 1, "generator.r_num": 2, "kl_weight": 2.0, "lambda_damsm": 0.0},
    },
}


def arch_overrides(arch: str, preset: str) -> dict[str, Any]:
    """The dotted config overrides architecture ``arch`` applies to ``preset`` (empty for AttnGAN)."""
    return dict(ARCH_OVERRIDES.get(arch, {}).get(preset, {}))
