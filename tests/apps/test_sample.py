"""`attngan sample` on tiny randomly initialised generators: files, sizes, seeds, streaming, bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from _sample_fixtures import make_generator_checkpoint
from PIL import Image
from typer.testing import CliRunner

from attngan_cli.apps.sample import CaptionSource, SampleSettings, encode_caption, sample_to_dir
from attngan_cli.cli import app
from attngan_cli.core.errors import CheckpointError, InputError
from attngan_cli.inference.pipeline import load_generator
from attngan_cli.storage.checkpoints import Checkpoint, load_checkpoint, save_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt3(tmp_path_factory):
    return make_generator_checkpoint(tmp_path_factory.mktemp("g3") / "G.pt", stages=3)


@pytest.fixture(scope="module")
def bundle3(ckpt3):
    return load_generator(ckpt3, "cpu", need_vocab=True)


@pytest.fixture
def attngan_log(caplog):
    """caplog that also sees the 'attngan' logger after the CLI set propagate=False on it."""
    log = logging.getLogger("attngan_cli")
    log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="attngan_cli")
    yield caplog
    log.removeHandler(caplog.handler)


def pngs(d):
    return sorted(p.name for p in d.glob("*.png"))


@pytest.mark.parametrize("stages", [1, 2, 3, 4])
def test_cli_files_and_sizes_per_stage(tmp_path, stages) -> None:
    ck = make_generator_checkpoint(tmp_path / "G.pt", stages=stages)
    out = tmp_path / "out"
    res = runner.invoke(app, ["sample", "this bird is red", "a small yellow bird", "-c", str(ck), "--n", "2",
                              "-o", str(out), "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    sizes = [8 * 2**i for i in range(stages)]
    expected = sorted(f"c{c:05d}-s{s:02d}-{z}.png" for c in range(2) for s in range(2) for z in sizes)
    assert pngs(out) == expected
    for z in sizes:
        assert Image.open(out / f"c00001-s01-{z}.png").size == (z, z)
    printed = [line for line in res.stdout.splitlines() if line.endswith(".png")]
    assert sorted(p.rsplit("/", 1)[-1] for p in printed) == expected
    index = [json.loads(x) for x in (out / "captions.jsonl").read_text().splitlines()]
    assert [r["text"] for r in index] == ["this bird is red", "a small yellow bird"]


def test_stage_last_and_grid(tmp_path, bundle3) -> None:
    src = CaptionSource(["this bird is red", "a bird with white wings"])
    paths = list(sample_to_dir(bundle3, src, tmp_path, SampleSettings(n=3, which="last", grid=True, batch_size=4)))
    names = sorted(p.name for p in paths)
    assert names == pngs(tmp_path)
    assert [n for n in names if "grid" in n] == ["c00000-grid.png", "c00001-grid.png"]
    assert all(n.endswith("-32.png") for n in names if "grid" not in n) and len(names) == 2 * 3 + 2
    assert Image.open(tmp_path / "c00000-grid.png").size == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)  # 3 samples, 2x2
    list(sample_to_dir(bundle3, src, tmp_path / "all", SampleSettings(n=2, which="all", grid=True)))
    assert Image.open(tmp_path / "all" / "c00001-grid.png").size == (3 * 32 + 4 * 2, 2 * 32 + 3 * 2)  # stages x n


def test_same_seed_same_images_any_batch_size(tmp_path, bundle3) -> None:
    src = CaptionSource(["this bird is red", "a small bird with a very short beak", "black crown"])

    def run(name, seed, bs):
        d = tmp_path / name
        list(sample_to_dir(bundle3, src, d, SampleSettings(n=2, seed=seed, batch_size=bs)))
        return {p.name: np.asarray(Image.open(p)) for p in d.glob("*.png")}

    a, b, c, d = run("a", 7, 4), run("b", 7, 4), run("c", 7, 1), run("d", 8, 4)
    assert a.keys() == b.keys() == c.keys() == d.keys() and len(a) == 3 * 2 * 3
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert all(np.array_equal(a[k], c[k]) for k in a)  # batch size does not change an image
    assert not all(np.array_equal(a[k], d[k]) for k in a)
    assert not np.array_equal(a["c00000-s00-32.png"], a["c00000-s01-32.png"])  # samples differ


def test_streams_batches(tmp_path, bundle3) -> None:
    f = tmp_path / "caps.txt"
    f.write_text("\n".join(["this bird is red", "", "white belly"] * 10) + "\n")  # 20 captions, blank lines skipped
    out = tmp_path / "out"
    it = sample_to_dir(bundle3, CaptionSource([], f), out, SampleSettings(which="last", batch_size=4))
    first = next(it)
    assert first.is_file()
    assert len(pngs(out)) <= 8  # at most the first two batches exist when the first path is handed out
    rest = list(it)
    assert len(rest) + 1 == 20 and len(pngs(out)) == 20
    index = [json.loads(x) for x in (out / "captions.jsonl").read_text().splitlines()]
    assert index[1]["where"] == f"{f}:3"


def test_bf16_precision_runs(tmp_path, bundle3) -> None:
    paths = list(sample_to_dir(bundle3, CaptionSource(["red bird"]), tmp_path, SampleSettings(precision="bf16")))
    assert len(paths) == 3


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------
def test_empty_and_punctuation_only(bundle3) -> None:
    for text in ["", "   ", "?!, ..."]:
        with pytest.raises(InputError, match="no words"):
            encode_caption(bundle3.vocab, text, "caption 1")


def test_all_unknown_names_the_words(bundle3) -> None:
    with pytest.raises(InputError, match="zebra, giraffe"):
        encode_caption(bundle3.vocab, "Zebra giraffe!", "caption 1")


def test_some_unknown_dropped_with_warning(bundle3, attngan_log) -> None:
    cap = encode_caption(bundle3.vocab, "this zebra bird is purple", "caption 1")
    assert cap.words == ["this", "bird", "is"] and cap.unknown == ["zebra", "purple"]
    assert "zebra, purple" in attngan_log.text


def test_longer_than_word_limit_uses_all_words(tmp_path, bundle3, attngan_log) -> None:
    text = "this bird is red with white and has a very short beak"  # 12 words, model limit 6
    paths = list(sample_to_dir(bundle3, CaptionSource([text]), tmp_path, SampleSettings(which="last")))
    assert len(paths) == 1
    assert "more than the 6" in attngan_log.text and "all 12 are used" in attngan_log.text
    rec = json.loads((tmp_path / "captions.jsonl").read_text())
    assert len(rec["words"]) == 12


def test_captions_file_bad_lines_named_before_any_image(tmp_path, ckpt3) -> None:
    f = tmp_path / "caps.txt"
    f.write_text("this bird is red\n\n...\nzebra giraffe\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["sample", "-f", str(f), "-c", str(ckpt3), "-o", str(out), "--device", "cpu", "-q"])
    assert res.exit_code == 1
    msg = " ".join(res.output.split())
    assert "2 bad captions" in msg and "caps.txt:3" in msg and "caps.txt:4" in msg and "zebra, giraffe" in msg
    assert not out.exists() or not pngs(out)


def test_cli_bad_inputs(tmp_path, ckpt3) -> None:
    r = runner.invoke(app, ["sample", "-c", str(ckpt3), "--device", "cpu"])
    assert r.exit_code == 1 and "no caption" in r.output
    r = runner.invoke(app, ["sample", "", "-c", str(ckpt3), "--device", "cpu", "-o", str(tmp_path)])
    assert r.exit_code == 1 and "no words" in r.output
    r = runner.invoke(app, ["sample", "red", "-c", str(ckpt3), "--which", "first", "-o", str(tmp_path)])
    assert r.exit_code == 1 and "--which (which) must be one of all, last, got 'first'" in r.output
    r = runner.invoke(app, ["sample", "red", "-c", str(tmp_path / "missing.pt")])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_wrong_checkpoint_kind_and_version(tmp_path, ckpt3) -> None:
    ck = load_checkpoint(ckpt3)
    enc = save_checkpoint(Checkpoint(kind="damsm", config={}, state={"text_encoder": {}, "image_encoder": {}},
                                     vocab=ck.vocab), tmp_path / "damsm.pt")
    with pytest.raises(CheckpointError, match="'damsm' checkpoint"):
        load_generator(enc, need_vocab=True)
    r = runner.invoke(app, ["sample", "red bird", "-c", str(enc), "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "damsm" in r.output and "Traceback" not in r.output
    future = Checkpoint(kind="generator", config=ck.config, state=ck.state, vocab=ck.vocab, extra=ck.extra,
                        format_version=99)
    save_checkpoint(future, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99"):
        load_generator(tmp_path / "future.pt", need_vocab=True)
    torch.save({"w": torch.zeros(1)}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not an attngan checkpoint"):
        load_generator(tmp_path / "bare.pt", need_vocab=True)


def test_many_warnings_are_summarised(bundle3, attngan_log) -> None:
    from attngan_cli.apps.sample import check_captions

    src = [(f"f.txt:{i + 1}", "this zebra bird") for i in range(15)]
    assert check_captions(src, bundle3.vocab, 6) == 15
    individual = {r.getMessage() for r in attngan_log.records if "dropped words" in r.getMessage()}
    assert len(individual) == 10
    assert "of 15 captions: 15 had words outside the vocabulary" in attngan_log.text


def test_cli_old_stage_spelling_still_works_with_a_deprecation(tmp_path, ckpt3) -> None:
    r = runner.invoke(app, ["sample", "red", "-c", str(ckpt3), "--device", "cpu", "--stage", "last", "-o",
                            str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "--stage is deprecated: use --which last" in r.output
    sizes = {p.stem.rsplit("-", 1)[1] for p in tmp_path.glob("c*.png")}
    assert len(sizes) == 1  # only the last stage, as --which last
    assert "--stage" not in runner.invoke(app, ["sample", "--help"]).output  # hidden: --which is the one to learn


def test_a_full_disk_ends_in_one_line_and_the_index_lists_only_what_exists(tmp_path, ckpt3, monkeypatch) -> None:
    """The PNG writer runs out of space at the 6th image, caption 2's second sample (issue 31, item 14):
    one line naming the file and the free space, captions.jsonl lists only the captions whose images are
    all on disk, no temporary file is left."""
    import errno

    real = Image.Image.save

    def full_at_the_6th(self, fp, *args, **kwargs):
        if ".c00002-s01-" in str(fp):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_at_the_6th)
    out = tmp_path / "out"
    caps = tmp_path / "caps.txt"
    caps.write_text("\n".join(["this bird is red", "white belly", "a small bird"] * 2) + "\n")
    r = runner.invoke(app, ["sample", "-f", str(caps), "-c", str(ckpt3), "-n", "2", "--which", "last",
                            "-b", "2", "--device", "cpu", "-o", str(out), "-q"])
    assert r.exit_code == 1, r.output
    assert r.output.count("error:") == 1 and "Traceback" not in r.output, r.output
    msg = " ".join(r.output[r.output.index("error:"):].split())  # after the paths written before it
    assert msg.startswith(f"error: cannot write {out}/c00002-s01-32.png: no space left on device ("), msg
    assert msg.endswith(f"free on {out}); free some space or choose another output path"), msg
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
    index = [json.loads(x) for x in (out / "captions.jsonl").read_text().splitlines()]
    assert [c["index"] for c in index] == [0, 1]  # caption 2 has one image of 2: not listed
    for c in index:
        assert all(len(list(out.glob(f"c{c['index']:05d}-s{s:02d}-*.png"))) == 1 for s in range(2))
    assert (out / "c00002-s00-32.png").is_file() and not (out / "c00002-s01-32.png").exists()
