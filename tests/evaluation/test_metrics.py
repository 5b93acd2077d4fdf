"""The pure metric layers: registry, Inception Score, FID statistics, R-precision, the sampling plan."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from attngan_cli.core.errors import InputError
from attngan_cli.evaluation.evaluate import make_plan
from attngan_cli.evaluation.fid import GaussianStats, fid_from_features, frechet_distance, stats_cache_path
from attngan_cli.evaluation.inception import InceptionScoreAccumulator, inception_score
from attngan_cli.evaluation.registry import get_metric, known_metrics, parse_metric_names


# ----------------------------------------------------------------------------------------- registry
def test_registry_knows_the_builtin_metrics():
    assert {"rprecision", "is", "fid", "attributes"} <= set(known_metrics())
    assert get_metric("IS").needs_inception and get_metric("fid").needs_inception
    assert get_metric("rprecision").needs_damsm and get_metric("attributes").needs_attributes
    assert parse_metric_names("is, fid") == ["is", "fid"]
    assert parse_metric_names(["is,fid", "rprecision", "is"]) == ["is", "fid", "rprecision"]


def test_registry_rejects_unknown_names_listing_the_known_ones():
    with pytest.raises(InputError, match=r"unknown metric 'fdi'.*attributes, clip-rprecision, clipscore, fid, is, rprecision"):
        parse_metric_names("is,fdi")
    with pytest.raises(InputError, match="no metric"):
        parse_metric_names(" , ")


# ----------------------------------------------------------------------------------------- IS
def test_is_of_uniform_predictions_is_one():
    mean, std = inception_score(torch.zeros(200, 1008), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("k", [2, 10, 37])
def test_is_of_confident_distinct_classes_is_the_class_count(k):
    n = k * 20
    logits = torch.full((n, 1008), -50.0)
    logits[torch.arange(n), torch.arange(n) % k] = 50.0  # every split holds each class equally often
    mean, std = inception_score(logits, splits=10 if k != 37 else 1)
    assert mean == pytest.approx(k, rel=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)


def test_is_matches_torch_fidelity_and_ignores_batch_size():
    import torch_fidelity.metric_isc as tf_isc  # a dependency; imported here as it takes seconds
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(503, 50, generator=g) * 3  # 503: parts of unequal size
    ref = tf_isc.isc_features_to_metric(logits, splits=10, shuffle=False)
    for bs in (1, 7, 64, 503):
        acc = InceptionScoreAccumulator(503, 10)
        for s in range(0, 503, bs):
            acc.update(logits[s : s + bs])
        mean, std = acc.compute()
        assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-9)
        assert std == pytest.approx(ref["inception_score_std"], rel=1e-6)


def test_is_accumulator_checks_counts():
    acc = InceptionScoreAccumulator(20, 10)
    acc.update(torch.zeros(10, 5))
    with pytest.raises(ValueError, match="only 10 of 20"):
        acc.compute()
    with pytest.raises(ValueError, match="more samples"):
        acc.update(torch.zeros(11, 5))
    with pytest.raises(ValueError, match="at least 10"):
        InceptionScoreAccumulator(5, 10)


# ----------------------------------------------------------------------------------------- FID
def _gauss(n, d, seed, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * scale + shift


def test_streamed_statistics_equal_numpy_and_ignore_batch_size():
    x = _gauss(1000, 16, 0, scale=3.0, shift=5.0)
    for bs in (1, 33, 1000):
        s = GaussianStats()
        for i in range(0, len(x), bs):
            s.update(torch.from_numpy(x[i : i + bs]).float() if bs == 33 else x[i : i + bs])
        assert s.n == 1000
        np.testing.assert_allclose(s.mu, x.mean(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False), rtol=1e-5, atol=1e-5)


def test_fid_of_a_set_against_itself_is_zero():
    x = _gauss(2000, 32, 1)
    assert abs(fid_from_features(x, x)) < 1e-6


def test_fid_grows_with_a_known_shift():
    x = _gauss(2000, 8, 2)
    shift = np.array([0.5, -1.0, 0, 0, 2.0, 0, 0, 0.25])
    # the same sample shifted: identical covariances, so FID = |shift|^2 exactly
    assert fid_from_features(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    for k in (0.5, 1.0, 2.0):  # grows quadratically with a shift of size k along every axis
        assert fid_from_features(x, x + k) == pytest.approx(8 * k * k, rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(3)
    d = 6
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())  # diagonal covariances
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # rotated (non-diagonal) versions of the same Gaussians: the distance is rotation invariant
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    got = frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-6)
    # sampled: N(0, I) vs N(0, 4 I) in 4-d -> 4 * (1 - 2)^2 = 4
    est = fid_from_features(_gauss(20000, 4, 4), _gauss(20000, 4, 5, scale=2.0))
    assert est == pytest.approx(4.0, rel=0.05)


def test_fid_agrees_with_torch_fidelity():
    import torch_fidelity.metric_fid as tf_fid  # a dependency; imported here as it takes seconds
    x, y = _gauss(500, 10, 6), _gauss(400, 10, 7, scale=1.5, shift=0.3)
    s1 = tf_fid.fid_features_to_statistics(torch.from_numpy(x))
    s2 = tf_fid.fid_features_to_statistics(torch.from_numpy(y))
    ref = tf_fid.fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]
    assert fid_from_features(x, y) == pytest.approx(ref, rel=1e-6)


def test_fid_batch_size_does_not_matter():
    x, y = _gauss(300, 12, 8), _gauss(300, 12, 9, shift=1.0)
    ref = fid_from_features(x, y)
    for bs in (1, 17, 300):
        a, b = GaussianStats(), GaussianStats()
        for i in range(0, 300, bs):
            a.update(x[i : i + bs])
            b.update(y[i : i + bs])
        assert frechet_distance(a.mu, a.cov, b.mu, b.cov) == pytest.approx(ref, rel=1e-9)


def test_statistics_cache_round_trip(tmp_path):
    x = _gauss(50, 5, 10)
    s = GaussianStats()
    s.update(x)
    p = stats_cache_path(tmp_path / "cub.h5", "ab" * 32)
    assert p.parent == tmp_path and p.name == "cub.fid-abababababababab.npz"
    s.save(p, key="k1")
    t = GaussianStats.load(p, key="k1")
    assert t.n == 50
    np.testing.assert_allclose(t.cov, s.cov)
    with pytest.raises(InputError, match="other data"):
        GaussianStats.load(p, key="k2")


# ----------------------------------------------------------------------------------------- R-precision
def _rp(img, table, rows, wrong, folds=10, bs=64):
    from attngan_cli.evaluation.rprecision import RPrecisionMetric

    ctx = SimpleNamespace(options=SimpleNamespace(rp_folds=folds), caption_embeddings=lambda: table)
    m = RPrecisionMetric(ctx)
    for s in range(0, len(img), bs):
        batch = SimpleNamespace(damsm_global=lambda s=s: img[s : s + bs], caption_rows=rows[s : s + bs],
                                wrong_rows=wrong[s : s + bs])
        m.update(batch)
    return m.compute()


def test_r_precision_oracle_and_random():
    g = torch.Generator().manual_seed(0)
    n, m, d = 3000, 5000, 32
    table = torch.randn(m, d, generator=g)
    rows = torch.randint(0, m, (n,), generator=g).numpy()
    wrong = torch.randint(0, m, (n, 99), generator=g).numpy()
    wrong[wrong == rows[:, None]] = (rows[:, None].repeat(99, 1)[wrong == rows[:, None]] + 1) % m
    oracle = _rp(table[rows] * 2.0, table, rows, wrong)  # image vector = its caption's vector
    assert oracle["mean"] == 1.0 and oracle["std"] == 0.0
    rand = _rp(torch.randn(n, d, generator=g), table, rows, wrong)
    assert rand["mean"] == pytest.approx(0.01, abs=0.006)  # 1 in 100
    # batch size does not change it
    assert _rp(torch.randn(n, d, generator=torch.Generator().manual_seed(1)), table, rows, wrong, bs=7) == \
        _rp(torch.randn(n, d, generator=torch.Generator().manual_seed(1)), table, rows, wrong, bs=1000)


# ----------------------------------------------------------------------------------------- sampling plan
def test_plan_repeats_the_split_and_draws_other_class_captions():
    class_ids = np.array([0, 0, 1, 2, 2, 3, 4])
    lengths = np.array([[5, 4, 0]] * 7)  # the third caption slot is empty everywhere
    plan = make_plan(class_ids, lengths, 17, seed=3, n_wrong=99)
    assert len(plan.items) == 17
    assert sorted(plan.items[:7]) == list(range(7)) and sorted(plan.items[7:14]) == list(range(7))
    assert set(plan.captions) <= {0, 1}  # never the empty one
    assert plan.wrong_rows.shape == (17, 99)
    row_items = plan.wrong_rows // 3
    assert (class_ids[row_items] != class_ids[plan.items][:, None]).all()
    assert (plan.wrong_rows % 3 != 2).all()
    again = make_plan(class_ids, lengths, 17, seed=3, n_wrong=99)
    assert (again.items == plan.items).all() and (again.wrong_rows == plan.wrong_rows).all()
    with pytest.raises(InputError, match="two classes"):
        make_plan(np.zeros(4, int), np.ones((4, 2), int), 8, seed=0, n_wrong=5)


def test_is_of_a_plan_sized_run_needs_enough_samples():
    assert math.isfinite(inception_score(torch.randn(10, 4))[0])


def test_registry_imports_no_metric_module_until_one_is_used():
    import subprocess
    import sys

    code = ("import sys, attngan_cli.evaluation.registry as r; r.known_metrics(); "
            "print(sorted(m for m in sys.modules if m.startswith('attngan_cli.evaluation.'))); "
            "r.get_metric('rprecision').factory; "
            "print('attngan_cli.evaluation.rprecision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['attngan_cli.evaluation.registry']"
    assert out[1] == "False"  # looking a metric up imports nothing either; building its accumulator does
