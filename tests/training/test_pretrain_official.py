"""DAMSM pretraining as the official pretrain_DAMSM.py does it (bird/coco presets): batch-statistics
BatchNorm in the frozen Inception layers, native crops, a new Adam per epoch; and exact resume with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _sample_fixtures import pretrain_settings
from PIL import Image

from attngan_cli.core.errors import TrainingAborted
from attngan_cli.data.cub import prep_cub
from attngan_cli.data.h5 import read_info
from attngan_cli.storage.checkpoints import load_checkpoint
from attngan_cli.storage.rundirs import RunDir

SIZE = 75  # the backbone's input size here (Inception's smallest); 299 in the presets
STORED = 89  # int(75 * 76 / 64): the official resize before the random crop


def _tiny_cub(root):
    """8 noise 'birds' of 2 classes in the official CUB layout, boxes over the whole image."""
    cub = root / "CUB_200_2011"
    rng = np.random.default_rng(1)
    keys = [f"00{c}.C{c}/img_{i}" for c in (1, 2) for i in range(4)]
    for k in keys:
        (cub / "images" / k).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (110, 120, 3), dtype=np.uint8)).save(cub / "images" / f"{k}.jpg")
        (root / "text" / k).parent.mkdir(parents=True, exist_ok=True)
        (root / "text" / f"{k}.txt").write_text("".join(f"a bird of kind {k[2]} number {j}\n" for j in range(10)))
    (cub / "images.txt").write_text("".join(f"{i + 1} {k}.jpg\n" for i, k in enumerate(keys)))
    (cub / "bounding_boxes.txt").write_text("".join(f"{i + 1} 0 0 120 110\n" for i in range(len(keys))))
    (cub / "image_class_labels.txt").write_text("".join(f"{i + 1} {k[2]}\n" for i, k in enumerate(keys)))
    (cub / "train_test_split.txt").write_text("".join(f"{i + 1} {int(i % 4 != 3)}\n" for i in range(len(keys))))
    return root


@pytest.fixture(scope="module")
def bird_run(tmp_path_factory):
    """A 2-epoch bird-preset pretraining (inception-v3 with random weights at 75 px) on tiny CUB data
    stored at 89 px, recording every image batch the encoder receives while training."""
    from torchvision.models import inception_v3

    from attngan_cli.training.damsm import pretrain

    tmp = tmp_path_factory.mktemp("birdrun")
    data = tmp / "cub.h5"
    prep_cub(_tiny_cub(tmp / "birds"), data, image_size=STORED)
    torch.manual_seed(0)
    weights = tmp / "inception_v3_google-test.pth"
    sd = inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    torch.save(sd, weights)
    settings = pretrain_settings("bird", {"dataset": str(data), "image.image_size": SIZE, "epochs": 2,
                                          "batch_size": 3, "device": "cpu", "snapshot_every": 1, "workers": 0},
                                 inception_weights=weights)
    cfg = settings.config
    seen = []

    def record(module, args):
        if module.training:
            seen.append(args[0].detach().clone())

    import attngan_cli.training.damsm as pt

    original = pt.ImageEncoder

    def encoder_with_hook(icfg):
        enc = original(icfg)
        enc.register_forward_pre_hook(record)
        return enc

    pt.ImageEncoder = encoder_with_hook
    try:
        run = RunDir.create(tmp / "runs", "cub", "pretrain")
        final = pretrain(settings, run)
    finally:
        pt.ImageEncoder = original
    return {"data": data, "sd": sd, "final": final, "run": run, "seen": seen, "cfg": cfg}


def test_bird_preset_moves_the_frozen_inception_bn_statistics(bird_run):
    """Official cnn_model.train(): the frozen layers' BN running statistics follow the training images and
    are saved with the encoder; the frozen weights stay as loaded."""
    assert bird_run["cfg"].image.frozen_bn == "train"
    state = load_checkpoint(bird_run["final"], kind="damsm").state["image_encoder"]
    sd = bird_run["sd"]
    for layer in ("Conv2d_1a_3x3", "Mixed_6e.branch1x1", "Mixed_7c.branch_pool"):
        assert not torch.allclose(state[f"{layer}.bn.running_mean"], sd[f"{layer}.bn.running_mean"]), layer
        assert not torch.allclose(state[f"{layer}.bn.running_var"], sd[f"{layer}.bn.running_var"]), layer
        assert torch.equal(state[f"{layer}.conv.weight"], sd[f"{layer}.conv.weight"]), layer
        assert torch.equal(state[f"{layer}.bn.weight"], sd[f"{layer}.bn.weight"]), layer
        assert torch.equal(state[f"{layer}.bn.bias"], sd[f"{layer}.bn.bias"]), layer


def test_bird_preset_feeds_native_crops_of_the_stored_image(bird_run):
    """The encoder receives crops of the backbone's size (no resize inside it), cut from the stored 89 px
    image without any interpolation: each is exactly a 75 px window of the stored pixels, maybe flipped."""
    from attngan_cli.data.dataset import TextImageDataset

    assert read_info(bird_run["data"]).image_size == STORED
    ds = TextImageDataset(bird_run["data"], split="train", image_sizes=(SIZE,), augment=False)
    stored = [torch.from_numpy(np.asarray(ds.raw_image(i))).permute(2, 0, 1).float() / 127.5 - 1 for i in range(len(ds))]
    seen = bird_run["seen"]
    assert len(seen) == 4  # 6 training images in batches of 3, 2 epochs
    positions = set()
    for batch in seen:
        assert tuple(batch.shape[1:]) == (3, SIZE, SIZE)
        for crop in batch:
            found = _find_window(crop, stored)
            assert found is not None, "the crop is not a window of a stored image: it was interpolated"
            positions.add(found)
    assert len(positions) > 1  # random positions


def _find_window(crop, stored):
    for img in stored:
        for c in (crop, crop.flip(-1)):
            for y in range(STORED - SIZE + 1):
                for x in range(STORED - SIZE + 1):
                    if torch.allclose(img[:, y, x], c[:, 0, 0], atol=1e-6) and \
                            torch.allclose(img[:, y:y + SIZE, x:x + SIZE], c, atol=1e-6):
                        return (y, x)
    return None


# --------------------------------------------------------------------------------------------------
def _shapes_settings(data, resume=None, **over):
    values = {"dataset": str(data), "epochs": 2, "batch_size": 16, "image.width": 8, "image.image_size": 32,
              "device": "cpu", "snapshot_every": 1, "seed": 5}
    values.update(over)
    return pretrain_settings("shapes", values, resume=resume)


@pytest.fixture(scope="module")
def shapes_small(tmp_path_factory):
    from attngan_cli.data.shapes import make_shapes

    return make_shapes(tmp_path_factory.mktemp("shapes") / "shapes.h5", n_train=48, n_test=24, seed=3)


def _adam_steps(path):
    state = load_checkpoint(path, kind="damsm").optim["adam"]["state"]
    return {int(s["step"]) for s in state.values()}


@pytest.mark.parametrize("per_epoch", [True, False])
def test_adam_is_rebuilt_at_every_epoch_start(shapes_small, tmp_path, per_epoch):
    """48 images in batches of 16: 3 steps per epoch. With adam_per_epoch (official) the Adam of epoch 2
    starts again at step 0, so after it Adam has taken 3 steps, not 6."""
    from attngan_cli.training.damsm import pretrain

    run = RunDir.create(tmp_path, "s", "pretrain")
    pretrain(_shapes_settings(shapes_small, adam_per_epoch=per_epoch), run)
    assert _adam_steps(run.file("checkpoint-1.pt")) == {3}
    assert _adam_steps(run.file("final.pt")) == ({3} if per_epoch else {6})


def test_resume_mid_epoch_with_adam_per_epoch_repeats_the_uninterrupted_run(shapes_small, tmp_path):
    """Stopped after step 4 (one step into epoch 2) and resumed: the resumed epoch continues with the saved
    Adam of that epoch (not a new one), so losses and final weights are the uninterrupted run's."""
    from attngan_cli.training.damsm import pretrain

    full: dict[int, dict] = {}
    final_a = pretrain(_shapes_settings(shapes_small, adam_per_epoch=True), RunDir.create(tmp_path, "a", "pretrain"),
                       callbacks=[lambda info: full.__setitem__(info.step, dict(info.losses))])
    part: dict[int, dict] = {}
    run_b = RunDir.create(tmp_path, "b", "pretrain")
    with pytest.raises(TrainingAborted, match="step 4"):
        pretrain(_shapes_settings(shapes_small, adam_per_epoch=True), run_b,
                 callbacks=[lambda info: part.__setitem__(info.step, dict(info.losses))], abort=lambda: max(part) >= 4)
    assert _adam_steps(run_b.file("interrupted.pt")) == {1}
    rest: dict[int, dict] = {}
    final_c = pretrain(_shapes_settings(shapes_small, resume=run_b.path, adam_per_epoch=True),
                       RunDir.create(tmp_path, "c", "pretrain"), callbacks=[lambda info: rest.__setitem__(info.step, dict(info.losses))])
    assert sorted(rest) == [5, 6]
    for s in (5, 6):
        assert rest[s] == full[s], s
    a, c = load_checkpoint(final_a, kind="damsm"), load_checkpoint(final_c, kind="damsm")
    for name in ("text_encoder", "image_encoder"):
        for k, v in a.state[name].items():
            assert torch.equal(v, c.state[name][k]), (name, k)


def test_the_loader_crops_anywhere_inside_the_stored_square(bird_run):
    """The random crops reach every offset 0..14 of the 89 px resize, in both axes, and nothing outside it:
    what lies outside the square prep stored (the rest of a non-square photo or box) is never seen; the
    official code crops the short-side-resized full image instead (a documented departure)."""
    from attngan_cli.data.dataset import TextImageDataset

    ds = TextImageDataset(bird_run["data"], split="train", image_sizes=(SIZE,), augment=True)
    stored = np.asarray(ds.raw_image(0))
    torch.manual_seed(0)
    ys, xs = set(), set()
    for _ in range(300):
        crop = ((ds.images(0)[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        hits = [(y, x) for c in (crop, crop[:, ::-1]) for y in range(STORED - SIZE + 1)
                for x in range(STORED - SIZE + 1) if np.array_equal(stored[y:y + SIZE, x:x + SIZE], c)]
        assert len(hits) == 1
        ys.add(hits[0][0])
        xs.add(hits[0][1])
    assert ys == xs == set(range(STORED - SIZE + 1))
