"""Shared test fixtures. Tests use tiny models and data they make; ../shared is optional."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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
