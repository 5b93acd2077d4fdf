"""The manifest of a score (evaluation.manifest): file hashes, the pure builder, TISE's caveat."""

from __future__ import annotations

import hashlib
import os

from attngan_cli.evaluation import manifest as M


def test_file_sha256_is_the_files_and_follows_a_change(tmp_path):
    f = tmp_path / "weights.pth"
    f.write_bytes(b"a" * 5_000_000)
    assert M.file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert M.file_sha256(str(f)) == M.file_sha256(f)  # remembered
    f.write_bytes(b"b" * 5_000_001)  # another size (and time): hashed again
    assert M.file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    f.write_bytes(b"c" * 5_000_001)  # same size, another time
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert M.file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert M.file_entry(f) == {"path": str(f.resolve()), "sha256": M.file_sha256(f), "bytes": 5_000_001}
    assert M.file_entry(None) is None


def test_build_manifest_is_a_pure_function_of_its_inputs():
    files = {"checkpoint": {"path": "/r/best.pt", "sha256": "c" * 64, "bytes": 3},
             "data": {"path": "/d.h5", "sha256": "d" * 64, "bytes": 4}, "inception": None}
    settings = {"num_samples": 30000, "truncation": 0.88}
    kwargs = dict(metrics=["fid", "rprecision"], settings=settings, files=files, seed=5, num_samples=30000,
                  versions={"attngan": "9", "torch": "2"}, protocol="dfgan", checkpoint_step=100, checkpoint_epoch=2,
                  rprecision_same_damsm=False)
    a = M.build_manifest(**kwargs)
    assert a == M.build_manifest(**kwargs)
    assert a["protocol"] == "dfgan" and a["settings"] == settings and a["settings"] is not settings
    assert a["checkpoint"] == {"path": "/r/best.pt", "sha256": "c" * 64, "step": 100, "epoch": 2}
    assert set(a["files"]) == {"checkpoint", "data"}  # files not used are left out
    assert (a["seed"], a["num_samples"], a["versions"]["torch"]) == (5, 30000, "2")
    assert a["rprecision_same_damsm"] is False and a["warnings"] == []
    b = M.build_manifest(**{**kwargs, "rprecision_same_damsm": True, "files": {}})
    assert b["warnings"] == [M.SAME_DAMSM_WARNING] and b["checkpoint"]["path"] is None
    assert M.build_manifest(metrics=["is"], settings={}, files={}, seed=0, num_samples=1,
                            versions={})["protocol"] == M.DEFAULT_PROTOCOL == "attngan"


def test_the_tise_caveat_needs_rprecision_the_same_damsm_and_its_loss():
    assert M.same_damsm_caveat(["rprecision", "fid"], True, 5.0)
    assert not M.same_damsm_caveat(["fid"], True, 5.0)
    assert not M.same_damsm_caveat(["rprecision"], False, 5.0)
    assert not M.same_damsm_caveat(["rprecision"], True, 0.0)  # trained without the DAMSM loss (lambda 0)
