"""Test-session setup: offline mirrors from ../shared, as CI has them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIM2REAL_SHARED", REPO.parent / "shared"))
REAL_DEV = SHARED / "data" / "real-dev"

os.environ.setdefault("SIM2REAL_ASSET_MIRROR", str(SHARED / "assets"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def real_dev() -> Path:
    """The real-dev photo folder (manifest.csv + <dataset>/<class>/<file>)."""
    if not (REAL_DEV / "manifest.csv").is_file():
        pytest.fail(f"{REAL_DEV} is missing: tests need ../shared beside the checkout (or SIM2REAL_SHARED).")
    return REAL_DEV


@pytest.fixture(scope="session")
def keras_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable KERAS_HOME whose models/ links to the offline MobileNetV2 weights."""
    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").symlink_to(SHARED / "assets" / "keras" / "models", target_is_directory=True)
    return home
