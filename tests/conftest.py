"""Shared test fixtures. Tests use tiny models and data they make; ../shared is optional."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# On a busy 2-core machine, OpenMP's spinning threads slow torch down many times; must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# --precision auto (the default of train, pretrain, sample, attend) is bf16 on CPUs with AVX-512 BF16 and fp32
# elsewhere: the suite pins it to fp32 so that it checks the same exact numbers on every machine; the tests of
# auto itself set or clear it (device.AUTO_PRECISION_ENV)
os.environ["ATTNGAN_AUTO_PRECISION"] = "fp32"

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATTNGAN_SHARED", REPO.parent / "shared"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (real CUB / official reference material)")
    return SHARED


@pytest.fixture(scope="session")
def cub_root(shared_dir: Path) -> Path:
    root = shared_dir / "cub" / "birds"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return root


@pytest.fixture(scope="session")
def official_reference(shared_dir: Path) -> Path:
    root = shared_dir / "official_reference"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return root


@pytest.fixture(scope="session")
def shapes_h5(tmp_path_factory) -> Path:
    """A tiny built-in shapes dataset (64 train + 32 test images stored at 76 px, 5 captions each)."""
    from attngan_cli.data.shapes import make_shapes

    path = tmp_path_factory.mktemp("shapes") / "shapes.h5"
    return make_shapes(path, n_train=64, n_test=32, image_size=76, seed=0)


@pytest.fixture(scope="session")
def damsm_path(shapes_h5: Path, tmp_path_factory) -> Path:
    """A DAMSM checkpoint with random compact encoders for the shapes fixture's vocabulary."""
    from _sample_fixtures import make_damsm

    from attngan_cli.data.h5 import read_vocab

    return make_damsm(tmp_path_factory.mktemp("damsm") / "damsm.pt", list(read_vocab(shapes_h5).words))


@pytest.fixture(scope="session")
def cub_records(cub_root):
    """Records (key, captions, split, crop) of the whole real CUB folder, read once (~10 s)."""
    from attngan_cli.data.cub import cub_records as read

    return read(cub_root)


@pytest.fixture()
def attngan_caplog(caplog):
    """``caplog`` at INFO for the ``attngan_cli`` loggers (a CLI run may have set them to WARNING with --quiet)."""
    import logging

    logs = [logging.getLogger("attngan_cli")]
    old = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.INFO)
    yield caplog
    for log, level in zip(logs, old, strict=True):
        log.setLevel(level)


@pytest.fixture()
def one_thread():
    """One torch thread for the test: tiny models gain nothing from a second one, and on a shared 2-core
    machine two OpenMP threads per process make their steps many times slower. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
