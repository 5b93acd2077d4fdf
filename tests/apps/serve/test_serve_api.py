"""`attngan serve`'s HTTP API in-process (FastAPI's test client) on tiny random checkpoints: the same images
as `attngan sample`, batching that changes no request's images, the attention data of every architecture,
and a 4xx with the CLI's message (never a traceback) for bad input."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from _sample_fixtures import make_generator_checkpoint
from _serve_fixtures import make_arch_checkpoint
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from attngan_cli.apps.sample import CaptionSource, SampleSettings, sample_to_dir  # noqa: E402
from attngan_cli.apps.serve import engine  # noqa: E402
from attngan_cli.apps.serve.app import create_app  # noqa: E402
from attngan_cli.apps.serve.engine import ServeSettings, check_settings, serve_model  # noqa: E402
from attngan_cli.core.errors import FieldError  # noqa: E402
from attngan_cli.inference.pipeline import load_generator  # noqa: E402


def decode(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_generator_checkpoint(tmp_path_factory.mktemp("serve") / "G.pt", stages=3)


@pytest.fixture(scope="module")
def model(ckpt):
    return serve_model("tiny", load_generator(ckpt, "cpu", need_vocab=True), "fp32")


def client(models, **settings) -> TestClient:
    return TestClient(create_app(models, check_settings(ServeSettings(**settings))))


def test_same_seed_same_images_as_sample(tmp_path, model, ckpt) -> None:
    caption = "this bird is red with white wings"
    list(sample_to_dir(load_generator(ckpt, "cpu", need_vocab=True), CaptionSource([caption]), tmp_path,
                       SampleSettings(n=3, seed=7, precision="fp32")))
    with client([model]) as c:
        r = c.post("/generate", json={"caption": caption, "seed": 7, "n": 3, "attention": False})
    assert r.status_code == 200, r.text
    samples = r.json()["samples"]
    assert len(samples) == 3
    for s in samples:
        assert [st["size"] for st in s["stages"]] == [8, 16, 32]
        for st in s["stages"]:
            cli = np.asarray(Image.open(tmp_path / f"c00000-s{s['sample']:02d}-{st['size']}.png"))
            assert np.array_equal(decode(st["png"]), cli), st["name"]
    assert not np.array_equal(decode(samples[0]["stages"][-1]["png"]), decode(samples[1]["stages"][-1]["png"]))


def test_batching_changes_no_request_images(model) -> None:
    """Three requests of different captions (lengths), seeds and n share one forward (the batcher waits
    long enough for all); each gets the images it gets alone."""
    requests = [("this bird is red", 1, 2), ("a small yellow bird with black wings and a short beak", 5, 1),
                ("bird", 9, 3)]
    settings = check_settings(ServeSettings(batch_wait_ms=1000, max_batch=16))
    batcher = engine.Batcher(model, settings)
    try:
        jobs = [engine.check_request(model, c, s, n, settings) for c, s, n in requests]
        futures = [batcher.submit(j) for j in jobs]
        outs = [f.result(timeout=30) for f in futures]
    finally:
        batcher.close()
    assert [o.batch_images for o in outs] == [6, 6, 6]  # one forward for all three
    for job, out in zip(jobs, outs, strict=True):
        alone = engine.run_batch(model, [engine.Job(job.caption, job.seed, job.n)])[0]
        assert alone.batch_images == job.n
        for a, b in zip(out.images, alone.images, strict=True):
            assert np.array_equal(engine_uint8(a), engine_uint8(b))
        for a, b in zip(out.extras["attn"], alone.extras["attn"], strict=True):
            assert a.shape == b.shape and a.shape[1] == len(job.caption.ids)
            assert np.allclose(a.numpy(), b.numpy(), atol=1e-5)


def engine_uint8(images):
    from attngan_cli.viz.grid import to_uint8

    return to_uint8(images)


def test_concurrent_clients_are_batched(model) -> None:
    with client([model], batch_wait_ms=300) as c:
        def one(seed: int) -> dict:
            r = c.post("/generate", json={"caption": "this bird is red", "seed": seed, "n": 2, "attention": False})
            assert r.status_code == 200, r.text
            return r.json()

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(one, range(4)))
        health = c.get("/health").json()
    assert max(a["timing"]["batch_images"] for a in answers) > 2  # some requests shared a forward
    assert health["models"]["tiny"]["images"] == 8
    assert health["models"]["tiny"]["batches"] < 4


def test_attention_data_and_figure(model) -> None:
    with client([model], top=3) as c:
        r = c.post("/generate", json={"caption": "this bird is red zzz", "seed": 1, "n": 2})
    assert r.status_code == 200
    data = r.json()
    assert data["words"] == ["this", "bird", "is", "red"] and data["unknown"] == ["zzz"]
    assert any("zzz" in w for w in data["warnings"])
    for s in data["samples"]:
        assert [a["stage"] for a in s["attention"]] == [2, 3]
        for a in s["attention"]:
            assert len(a["ranked"]) == 4 and len(a["top"]) == 3
            scores = [w["score"] for w in a["ranked"]]
            assert scores == sorted(scores, reverse=True)
            assert set(a["maps"]) == {str(w["index"]) for w in a["top"]}
            assert decode(a["maps"][str(a["top"][0]["index"])]).shape == (32, 32, 3)
        assert decode(s["figure"]).shape[0] > 32
        assert s["sentence_attention"] == [] and s["other"] == []


@pytest.mark.parametrize("arch", ["mirrorgan", "stackgan++", "dmgan", "dfgan"])
def test_other_architectures(tmp_path, arch) -> None:
    stages = 1 if arch == "dfgan" else 2
    m = serve_model(arch, load_generator(make_arch_checkpoint(tmp_path / "G.pt", arch, stages=stages), "cpu",
                                         need_vocab=True), "fp32")
    with client([m]) as c:
        facts = c.get("/models").json()["models"][0]
        r = c.post("/generate", json={"caption": "this bird is red", "n": 1})
    assert r.status_code == 200, r.text
    s = r.json()["samples"][0]
    assert facts["arch"] == arch
    if arch == "dmgan":  # the memory's addressing weights per word, drawn as word attention
        assert facts["memory"] and [a["kind"] for a in s["attention"]] == ["memory addressing"]
        assert s["attention"][0]["top"] and "figure" in s
    elif arch == "mirrorgan":
        assert facts["word_attention"] and facts["sentence_attention"]
        assert s["attention"][0]["kind"] == "word attention"
        assert len(s["attention"]) == 1 and len(s["sentence_attention"]) == 1
        assert 0 < s["sentence_attention"][0]["peak_share"] <= 1 and "figure" in s
    else:
        assert not facts["word_attention"]
        assert s["attention"] == [] and s["sentence_attention"] == [] and "figure" not in s


def test_an_unknown_output_is_described_generically(model) -> None:
    """An output the renderer has no drawing for (a memory's per-word weights) is listed per word."""
    import torch

    from attngan_cli.apps.serve.render import render

    job = engine.check_request(model, "this bird is red", 0, 1, ServeSettings())
    out = engine.run_batch(model, [job])[0]
    out.extras["memory_weights"] = [torch.rand(1, 4, 16)]  # (n, T, regions)
    s = render(model, job, out, top=5)["samples"][0]
    (other,) = s["other"]
    assert other["name"] == "memory_weights" and other["shape"] == [4, 16]
    assert [w["word"] for w in other["words"]] == ["this", "bird", "is", "red"]


BAD = [
    ({"caption": ""}, "has no words"),
    ({"caption": "  ,. "}, "has no words"),
    ({"caption": "zzz qqq"}, "none of the words of 'zzz qqq' is in the model's vocabulary"),
    ({"caption": "bird " * 2000}, "10000 characters, more than the 1000"),
    ({"caption": "bird", "n": 9}, "n must be <= 8"),
    ({"caption": "bird", "n": 0}, "n must be >= 1, got 0"),
    ({"caption": "bird", "seed": -1}, "seed must be in [0, 4294967295], got -1"),
    ({"caption": "bird", "n": 1.5}, "n:"),
    ({"n": 1}, "caption is missing"),
    ({"caption": 5}, "caption:"),
    ([1, 2], "must be a JSON object"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_input_gets_400_with_the_cli_message(model, body, message) -> None:
    with client([model]) as c:
        r = c.post("/generate", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize("raw", [b"{bad json", b'{"caption": "bird",}', b"", b"\xff\xfe"])
def test_malformed_json_gets_400(model, raw) -> None:
    with client([model]) as c:
        r = c.post("/generate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "JSON" in r.json()["error"] or "missing" in r.json()["error"]


def test_unknown_model_404_and_huge_body_413(model) -> None:
    with client([model]) as c:
        r = c.post("/generate", json={"caption": "bird", "model": "nope"})
        assert r.status_code == 404 and "no model 'nope'; this server has: tiny" in r.json()["error"]
        r = c.post("/generate", content=b"x" * 100_000, headers={"content-type": "application/json"})
        assert r.status_code == 413


def test_queue_full_503_and_timeout_504(model, monkeypatch) -> None:
    release = threading.Event()
    real = engine.run_batch

    def stuck(m, jobs):
        release.wait(10)
        return real(m, jobs)

    def wait_for(key: str) -> None:
        deadline = time.monotonic() + 10
        while not c.get("/health").json()["models"]["tiny"][key]:
            assert time.monotonic() < deadline, key
            time.sleep(0.01)

    monkeypatch.setattr(engine, "run_batch", stuck)
    with client([model], queue=1, timeout_s=1.0, batch_wait_ms=0) as c:
        body = {"caption": "bird", "attention": False}
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(c.post, "/generate", json=body)  # taken by the worker, stuck
            wait_for("running")
            second = pool.submit(c.post, "/generate", json=body)  # waits in the queue
            wait_for("queued")
            third = c.post("/generate", json=body)
            assert third.status_code == 503 and "--queue" in third.json()["error"]
            assert first.result().status_code == 504 and "--timeout" in first.result().json()["error"]
            assert second.result().status_code == 504
        release.set()


def test_models_tokenize_health_page(model, tmp_path) -> None:
    with client([model]) as c:
        models = c.get("/models").json()
        assert models["models"][0]["vocab_size"] == 20 and models["models"][0]["image_sizes"] == [8, 16, 32]
        assert models["limits"]["max_n"] == 8
        toks = c.post("/tokenize", json={"caption": "This bird, zzz!"}).json()["tokens"]
        assert toks == [{"word": "this", "known": True}, {"word": "bird", "known": True},
                        {"word": "zzz", "known": False}]
        assert c.get("/health").json()["status"] == "ok"
        page = c.get("/")
        assert page.status_code == 200 and 'id="caption"' in page.text
        assert c.get("/static/app.js").status_code == 200
        spec = c.get("/openapi.json").json()
        assert {"/generate", "/models", "/health", "/tokenize"} <= set(spec["paths"])
        assert c.get("/docs").status_code == 404  # its scripts come from a CDN


def test_page_fetches_nothing_from_elsewhere() -> None:
    from attngan_cli.apps.serve.app import STATIC

    for f in STATIC.iterdir():
        text = f.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f.name


def test_several_models(model, tmp_path) -> None:
    other = serve_model("mirror", load_generator(make_arch_checkpoint(tmp_path / "M.pt", "mirrorgan"), "cpu",
                                                 need_vocab=True), "fp32")
    with client([model, other]) as c:
        assert [m["name"] for m in c.get("/models").json()["models"]] == ["tiny", "mirror"]
        first = c.post("/generate", json={"caption": "bird", "attention": False}).json()
        second = c.post("/generate", json={"caption": "bird", "model": "mirror", "attention": False}).json()
        assert first["model"] == "tiny" and first["image_sizes"] == [8, 16, 32]
        assert second["model"] == "mirror" and second["image_sizes"] == [8, 16]
        assert set(c.get("/health").json()["models"]) == {"tiny", "mirror"}


def test_recorded_metrics_and_names(tmp_path, ckpt) -> None:
    run = tmp_path / "00003-shapes-train"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "final.pt").write_bytes(Path(ckpt).read_bytes())
    (run / "metrics.jsonl").write_text(json.dumps({"step": 40, "metrics": {"r_precision": 0.5, "bad": "x", "attributes": {"color": 0.75, "color_n": 9.0}}}) + "\n")
    assert engine.model_name(run / "final.pt", set()) == "00003-shapes-train"
    assert engine.model_name(run, {"00003-shapes-train"}) == "00003-shapes-train-2"
    m = serve_model("x", load_generator(run, "cpu", need_vocab=True), "fp32")
    assert m.facts["metrics"] == [{"step": 40, "num_samples": None, "time": None, "metrics": {"r_precision": 0.5, "attributes.color": 0.75}}]


def test_bf16_precision_runs_on_cpu(ckpt) -> None:
    m = serve_model("bf16", load_generator(ckpt, "cpu", need_vocab=True), "bf16")
    with client([m]) as c:
        r = c.post("/generate", json={"caption": "this bird is red", "n": 2})
    assert r.status_code == 200 and r.json()["precision"] == "bf16"


def test_a_bug_is_a_500_without_traceback_and_the_server_goes_on(model, monkeypatch) -> None:
    real = engine.run_batch

    def broken(m, jobs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(engine, "run_batch", broken)
    with TestClient(create_app([model], ServeSettings()), raise_server_exceptions=False) as c:
        r = c.post("/generate", json={"caption": "bird"})
        assert r.status_code == 500 and r.json() == {
            "error": "internal error (RuntimeError); the server log has the details"}
        monkeypatch.setattr(engine, "run_batch", real)
        assert c.post("/generate", json={"caption": "bird", "attention": False}).status_code == 200


def test_a_precision_the_device_cannot_run_fails_at_start(ckpt) -> None:
    from attngan_cli.core.errors import AttnGANError

    with pytest.raises(AttnGANError, match="fp16 needs a CUDA device"):
        serve_model("x", load_generator(ckpt, "cpu", need_vocab=True), "fp16")


def test_settings_checked() -> None:
    with pytest.raises(FieldError, match="max_batch must be >= max_n"):
        check_settings(ServeSettings(max_n=8, max_batch=4))
    with pytest.raises(FieldError, match="timeout_s"):
        check_settings(ServeSettings(timeout_s=0))
