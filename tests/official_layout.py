"""Key/shape tables of the official AttnGAN state dicts (code/model.py of taoxugit/AttnGAN), written
out from the official module definitions, independent of attngan_cli's models.

Each table is a list of (key, shape) in the official order, without ``num_batches_tracked`` (the released
files, saved by PyTorch 0.3.1, have none).
"""

from __future__ import annotations

Table = list[tuple[str, tuple[int, ...]]]


def bn(prefix: str, n: int) -> Table:
    return [(f"{prefix}.weight", (n,)), (f"{prefix}.bias", (n,)),
            (f"{prefix}.running_mean", (n,)), (f"{prefix}.running_var", (n,))]


def generator_table(ngf: int, r_num: int, stages: int, z_dim: int = 100, c_dim: int = 100, nef: int = 256) -> Table:
    """G_NET: CA_NET, INIT_STAGE_G(16ngf) with upsample1..4, NEXT_STAGE_G per extra stage, GET_IMAGE_G heads."""
    gf = 16 * ngf
    t: Table = [("ca_net.fc.weight", (4 * c_dim, nef)), ("ca_net.fc.bias", (4 * c_dim,)),
                ("h_net1.fc.0.weight", (gf * 32, z_dim + c_dim)), *bn("h_net1.fc.1", gf * 32)]
    ch = gf
    for i in range(1, 5):  # upBlock(ch, ch/2): conv3x3(ch, ch) + BN(ch)
        t += [(f"h_net1.upsample{i}.1.weight", (ch, ch, 3, 3)), *bn(f"h_net1.upsample{i}.2", ch)]
        ch //= 2
    t += [("img_net1.img.0.weight", (3, ngf, 3, 3))]
    for s in range(2, stages + 1):
        t += [(f"h_net{s}.att.conv_context.weight", (ngf, nef, 1, 1))]
        for k in range(r_num):
            p = f"h_net{s}.residual.{k}.block"
            t += [(f"{p}.0.weight", (4 * ngf, 2 * ngf, 3, 3)), *bn(f"{p}.1", 4 * ngf),
                  (f"{p}.3.weight", (2 * ngf, 2 * ngf, 3, 3)), *bn(f"{p}.4", 2 * ngf)]
        t += [(f"h_net{s}.upsample.1.weight", (2 * ngf, 2 * ngf, 3, 3)), *bn(f"h_net{s}.upsample.2", 2 * ngf)]
        t += [(f"img_net{s}.img.0.weight", (3, ngf, 3, 3))]
    return t


def dmgan_generator_table(ngf: int, r_num: int, stages: int, z_dim: int = 100, c_dim: int = 100,
                          nef: int = 256) -> Table:
    """DM-GAN's G_NET (MinfengZhu/DM-GAN code/model.py): AttnGAN's, with NEXT_STAGE_G's dynamic memory
    (A, B, M_r, M_w, key, value, response_gate) instead of the word attention."""
    t: Table = []
    for key, shape in generator_table(ngf, r_num, stages, z_dim, c_dim, nef):
        stage = key.split(".")[0]
        if key.endswith("att.conv_context.weight"):
            t += [(f"{stage}.A.weight", (1, nef)), (f"{stage}.B.weight", (1, ngf)),
                  (f"{stage}.M_r.0.weight", (2 * ngf, ngf, 1)), (f"{stage}.M_r.0.bias", (2 * ngf,)),
                  (f"{stage}.M_w.0.weight", (2 * ngf, nef, 1)), (f"{stage}.M_w.0.bias", (2 * ngf,)),
                  (f"{stage}.key.0.weight", (ngf, 2 * ngf, 1)), (f"{stage}.key.0.bias", (ngf,)),
                  (f"{stage}.value.0.weight", (ngf, 2 * ngf, 1)), (f"{stage}.value.0.bias", (ngf,)),
                  (f"{stage}.response_gate.0.weight", (1, 2 * ngf, 1, 1)), (f"{stage}.response_gate.0.bias", (1,))]
        else:
            t.append((key, shape))
    return t


def discriminator_table(ndf: int, image_size: int, nef: int = 256) -> Table:
    """D_NET64 / D_NET128 / D_NET256."""
    t: Table = [("img_code_s16.0.weight", (ndf, 3, 4, 4)),
                ("img_code_s16.2.weight", (2 * ndf, ndf, 4, 4)), *bn("img_code_s16.3", 2 * ndf),
                ("img_code_s16.5.weight", (4 * ndf, 2 * ndf, 4, 4)), *bn("img_code_s16.6", 4 * ndf),
                ("img_code_s16.8.weight", (8 * ndf, 4 * ndf, 4, 4)), *bn("img_code_s16.9", 8 * ndf)]
    if image_size == 128:
        t += [("img_code_s32.0.weight", (16 * ndf, 8 * ndf, 4, 4)), *bn("img_code_s32.1", 16 * ndf),
              ("img_code_s32_1.0.weight", (8 * ndf, 16 * ndf, 3, 3)), *bn("img_code_s32_1.1", 8 * ndf)]
    elif image_size == 256:
        t += [("img_code_s32.0.weight", (16 * ndf, 8 * ndf, 4, 4)), *bn("img_code_s32.1", 16 * ndf),
              ("img_code_s64.0.weight", (32 * ndf, 16 * ndf, 4, 4)), *bn("img_code_s64.1", 32 * ndf),
              ("img_code_s64_1.0.weight", (16 * ndf, 32 * ndf, 3, 3)), *bn("img_code_s64_1.1", 16 * ndf),
              ("img_code_s64_2.0.weight", (8 * ndf, 16 * ndf, 3, 3)), *bn("img_code_s64_2.1", 8 * ndf)]
    else:
        assert image_size == 64
    t += [("UNCOND_DNET.outlogits.0.weight", (1, 8 * ndf, 4, 4)), ("UNCOND_DNET.outlogits.0.bias", (1,)),
          ("COND_DNET.jointConv.0.weight", (8 * ndf, 8 * ndf + nef, 3, 3)), *bn("COND_DNET.jointConv.1", 8 * ndf),
          ("COND_DNET.outlogits.0.weight", (1, 8 * ndf, 4, 4)), ("COND_DNET.outlogits.0.bias", (1,))]
    return t


def text_encoder_table(vocab: int, word_dim: int = 300, nhidden: int = 128) -> Table:
    """RNN_ENCODER (bidirectional one-layer LSTM)."""
    t: Table = [("encoder.weight", (vocab, word_dim))]
    for suffix in ("", "_reverse"):
        t += [(f"rnn.weight_ih_l0{suffix}", (4 * nhidden, word_dim)), (f"rnn.weight_hh_l0{suffix}", (4 * nhidden, nhidden)),
              (f"rnn.bias_ih_l0{suffix}", (4 * nhidden,)), (f"rnn.bias_hh_l0{suffix}", (4 * nhidden,))]
    return t


def shapes_of(state: dict) -> dict[str, tuple[int, ...]]:
    """key -> shape of a state dict, without num_batches_tracked."""
    return {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
