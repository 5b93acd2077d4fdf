"""`attngan import official` / `attngan import dmgan`: turn the official AttnGAN and DM-GAN release files into
attngan checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from attngan_cli.cli.commands.common import command
from attngan_cli.cli.commands.options import Json, Overwrite, Quiet
from attngan_cli.core.errors import InputError

app = typer.Typer(help="Convert official AttnGAN, DM-GAN and DF-GAN checkpoints into self-describing attngan checkpoints.",
                  no_args_is_help=True)


@app.command("official", no_args_is_help=True)
@command
def official(
    generator: Annotated[Path, typer.Option("--generator", "-g", help="Official generator, e.g. bird_AttnGAN2.pth.")],
    text_encoder: Annotated[Path, typer.Option("--text-encoder", "-t", help="Official DAMSM text encoder, e.g. DAMSMencoders/bird/text_encoder200.pth.")],
    captions: Annotated[Path, typer.Option("--captions", help="The official captions.pickle of the same dataset (its vocabulary).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for generator.pt and damsm.pt.")],
    preset: Annotated[str, typer.Option("--preset", help="bird or coco: the released models' settings to check against.")] = "bird",
    image_encoder: Annotated[Path | None, typer.Option("--image-encoder", "-i", help="Official DAMSM image encoder, e.g. DAMSMencoders/bird/image_encoder200.pth (for R-precision and fine-tuning).")] = None,
    discriminators: Annotated[list[Path] | None, typer.Option("--discriminators", "-d", metavar="D0.pth [D1.pth ...]", help="Official netD0.pth netD1.pth netD2.pth, one per stage in order (for fine-tuning).")] = None,
    more_discriminators: Annotated[list[Path] | None, typer.Argument(hidden=True, metavar="DISCRIMINATORS", help="The 2nd, 3rd ... discriminator after --discriminators.")] = None,
    custom: Annotated[bool, typer.Option("--custom", help="Files of your own training with the official code: take every size from the tensors, the preset only for training settings.")] = False,
    overwrite: Overwrite = False,
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Import the official AttnGAN release files (generator, DAMSM encoders, captions.pickle).

    Writes OUT/generator.pt (generator + text encoder + vocabulary + config: usable by sample, attend, eval and as a starting point for train) and OUT/damsm.pt (the DAMSM encoders).

    Every size is read from the tensors and checked against the preset, captions.pickle and the other files. Files are read without running code from them (old and new PyTorch formats, Python 2 pickles).

    Examples:

      attngan import official --generator bird_AttnGAN2.pth --text-encoder DAMSMencoders/bird/text_encoder200.pth --image-encoder DAMSMencoders/bird/image_encoder200.pth --captions data/birds/captions.pickle --preset bird --out imported/bird

      attngan import official -g coco_AttnGAN2.pth -t DAMSMencoders/coco/text_encoder100.pth --captions data/coco/captions.pickle --preset coco --out imported/coco

      attngan import official -g netG.pth -t text_encoder.pth --captions captions.pickle --discriminators netD0.pth netD1.pth netD2.pth --preset bird --custom --out imported/mine
    """
    from attngan_cli.apps.importers.attngan import import_official  # deferred: keeps `attngan --help` fast
    from attngan_cli.archs.registry import image_sizes

    if more_discriminators and not discriminators:
        raise InputError(f"unexpected argument(s): {' '.join(map(str, more_discriminators))} "
                         "(discriminator files follow --discriminators)")
    d_files = list(discriminators or []) + list(more_discriminators or [])
    result = import_official(
        generator=generator, text_encoder=text_encoder, captions=captions, preset=preset, out=out,
        image_encoder=image_encoder, discriminators=d_files, custom=custom, overwrite=overwrite,
    )
    if json_out:
        g = result.train_config.generator
        typer.echo(json.dumps({
            "generator": str(result.generator_path), "damsm": str(result.damsm_path),
            "stages": g.stages, "image_sizes": image_sizes(g), "ngf": g.ngf, "r_num": g.r_num,
            "ndf": result.train_config.discriminator.ndf, "vocab_size": result.vocab_size,
            "discriminators": result.discriminators, "image_encoder": result.image_encoder, "notes": result.notes,
        }))
    else:
        typer.echo(str(result.generator_path))
        typer.echo(str(result.damsm_path))


@app.command("dmgan", no_args_is_help=True)
@command
def dmgan(
    generator: Annotated[Path, typer.Option("--generator", "-g", help="Official DM-GAN generator, e.g. bird_DMGAN.pth.")],
    text_encoder: Annotated[Path, typer.Option("--text-encoder", "-t", help="Official DAMSM text encoder (AttnGAN's), e.g. DAMSMencoders/bird/text_encoder200.pth.")],
    captions: Annotated[Path, typer.Option("--captions", help="The official captions.pickle of the same dataset (its vocabulary).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for generator.pt and damsm.pt.")],
    preset: Annotated[str, typer.Option("--preset", help="bird or coco: the released models' settings (--arch dmgan presets) to check against.")] = "bird",
    image_encoder: Annotated[Path | None, typer.Option("--image-encoder", "-i", help="Official DAMSM image encoder (for R-precision and fine-tuning).")] = None,
    discriminators: Annotated[list[Path] | None, typer.Option("--discriminators", "-d", metavar="D0.pth [D1.pth ...]", help="netD0.pth netD1.pth netD2.pth of your own training with the official code, one per stage in order (DM-GAN released none).")] = None,
    more_discriminators: Annotated[list[Path] | None, typer.Argument(hidden=True, metavar="DISCRIMINATORS", help="The 2nd, 3rd ... discriminator after --discriminators.")] = None,
    custom: Annotated[bool, typer.Option("--custom", help="Files of your own training with the official code: take every size from the tensors, the preset only for training settings.")] = False,
    overwrite: Overwrite = False,
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Import an official DM-GAN generator (bird_DMGAN.pth, coco_DMGAN.pth) with AttnGAN's DAMSM encoders.

    Writes OUT/generator.pt (--arch dmgan generator + text encoder + vocabulary + config: usable by sample, attend, eval and as a starting point for train) and OUT/damsm.pt (the DAMSM encoders).

    Examples:

      attngan import dmgan --generator bird_DMGAN.pth --text-encoder DAMSMencoders/bird/text_encoder200.pth --image-encoder DAMSMencoders/bird/image_encoder200.pth --captions data/birds/captions.pickle --preset bird --out imported/dmgan-bird

      attngan import dmgan -g coco_DMGAN.pth -t DAMSMencoders/coco/text_encoder100.pth --captions data/coco/captions.pickle --preset coco --out imported/dmgan-coco
    """
    from attngan_cli.apps.importers.dmgan import import_dmgan  # deferred: keeps `attngan --help` fast
    from attngan_cli.archs.registry import image_sizes

    if more_discriminators and not discriminators:
        raise InputError(f"unexpected argument(s): {' '.join(map(str, more_discriminators))} "
                         "(discriminator files follow --discriminators)")
    result = import_dmgan(
        generator=generator, text_encoder=text_encoder, captions=captions, preset=preset, out=out,
        image_encoder=image_encoder, discriminators=list(discriminators or []) + list(more_discriminators or []),
        custom=custom, overwrite=overwrite,
    )
    if json_out:
        g = result.train_config.generator
        typer.echo(json.dumps({
            "generator": str(result.generator_path), "damsm": str(result.damsm_path), "arch": g.arch,
            "stages": g.stages, "image_sizes": image_sizes(g), "ngf": g.ngf, "r_num": g.r_num,
            "ndf": result.train_config.discriminator.ndf, "vocab_size": result.vocab_size,
            "discriminators": result.discriminators, "image_encoder": result.image_encoder, "notes": result.notes,
        }))
    else:
        typer.echo(str(result.generator_path))
        typer.echo(str(result.damsm_path))


@app.command("dfgan", no_args_is_help=True)
@command
def dfgan(
    state: Annotated[Path, typer.Option("--state", "-s", help="DF-GAN's saved training state: state_epoch_1220.pth (bird) or state_epoch_290.pth (coco).")],
    text_encoder: Annotated[Path, typer.Option("--text-encoder", "-t", help="The DAMSM text encoder it was trained with: DAMSMencoders/bird/text_encoder200.pth (coco: text_encoder100.pth).")],
    captions: Annotated[Path, typer.Option("--captions", help="The captions.pickle of the same dataset (its vocabulary).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for dfgan.pt and damsm.pt.")],
    preset: Annotated[str, typer.Option("--preset", help="bird or coco: the released models' settings to check against.")] = "bird",
    image_encoder: Annotated[Path | None, typer.Option("--image-encoder", "-i", help="The DAMSM image encoder (for R-precision).")] = None,
    custom: Annotated[bool, typer.Option("--custom", help="A state of your own training with the official code: take every size from the tensors, the preset only for training settings.")] = False,
    overwrite: Overwrite = False,
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Import a DF-GAN training state (generator, discriminator, its condition head, both Adam states).

    Writes OUT/dfgan.pt, a training checkpoint of --arch dfgan (sample, attend, eval read it; `attngan train DATA --resume OUT/dfgan.pt` fine-tunes it with the official optimiser states), and OUT/damsm.pt (the DAMSM encoders).

    Every size is read from the tensors; the DDP module. prefixes are dropped. The file is read without running code from it.

    Examples:

      attngan import dfgan --state state_epoch_1220.pth --text-encoder DAMSMencoders/bird/text_encoder200.pth --captions data/birds/captions.pickle --preset bird --out imported/dfgan-bird

      attngan import dfgan -s state_epoch_290.pth -t DAMSMencoders/coco/text_encoder100.pth --captions data/coco/captions.pickle --preset coco --out imported/dfgan-coco
    """
    from attngan_cli.apps.importers.dfgan import import_dfgan  # deferred: keeps `attngan --help` fast

    result = import_dfgan(state=state, text_encoder=text_encoder, captions=captions, preset=preset, out=out,
                          image_encoder=image_encoder, custom=custom, overwrite=overwrite)
    if json_out:
        g = result.train_config.generator
        typer.echo(json.dumps({
            "checkpoint": str(result.checkpoint_path), "damsm": str(result.damsm_path), "image_size": g.base_size,
            "ngf": g.ngf, "ndf": result.train_config.discriminator.ndf, "z_dim": g.z_dim,
            "vocab_size": result.vocab_size, "epoch": result.epoch, "optimizers": result.optimizers,
            "image_encoder": result.image_encoder, "notes": result.notes,
        }))
    else:
        typer.echo(str(result.checkpoint_path))
        typer.echo(str(result.damsm_path))
