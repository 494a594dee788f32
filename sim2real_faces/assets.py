"""Every external file the project needs, pinned by URL and sha256.

``fetch(name)`` returns a verified local copy. Lookup order:

1. the mirror folder named by ``SIM2REAL_ASSET_MIRROR`` (laid out like ``../shared/assets``:
   ``mediapipe/face_landmarker.task``, ``makehuman/core/...``); used in place after its hash checks out;
2. the download cache (``SIM2REAL_CACHE``, default: the OS cache folder), filled by pooch from the
   pinned URL and verified against the pinned sha256.

A hash mismatch is always an error. With no mirror and no network the error names the file, its URL
and the mirror setting; the network library's own exception chain is left out of it (it says nothing
the message does not; ``--debug`` / ``SIM2REAL_DEBUG=1`` on a stage shows it). Prefetch everything with
``python -m sim2real_faces.assets``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pooch

from sim2real_faces.errors import ProjectError

MIRROR_ENV = "SIM2REAL_ASSET_MIRROR"
CACHE_ENV = "SIM2REAL_CACHE"
_REGISTRY_DIR = Path(__file__).with_name("registry")


class AssetError(ProjectError, RuntimeError):
    """An external file is unknown, unavailable or does not match its pinned hash."""


@dataclass(frozen=True)
class Asset:
    """One pinned external file."""

    name: str
    url: str
    sha256: str
    size: int
    licence: str


# Google's published Face Landmarker bundle (float16, version 1).
_MEDIAPIPE = Asset(
    name="mediapipe/face_landmarker.task",
    url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    size=3_758_596,
    licence="Apache-2.0",
)


@functools.cache
def registry() -> dict[str, Asset]:
    """All known assets by name: MediaPipe's model and the MakeHuman CC0 files (registry/makehuman.csv)."""
    assets = {_MEDIAPIPE.name: _MEDIAPIPE}
    with (_REGISTRY_DIR / "makehuman.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            name = f"makehuman/{row['path']}"
            assets[name] = Asset(name, row["url"], row["sha256"], int(row["bytes"]), row["licence"])
    return assets


def names(prefix: str = "") -> list[str]:
    """Sorted registry names starting with ``prefix`` (e.g. ``"makehuman/assets/expressions/"``)."""
    return sorted(name for name in registry() if name.startswith(prefix))


def cache_dir() -> Path:
    """Where downloads are kept: ``$SIM2REAL_CACHE`` or the OS cache folder."""
    return Path(os.environ.get(CACHE_ENV) or pooch.os_cache("sim2real-faces"))


def fetch(name: str) -> Path:
    """Return a local, hash-verified path of asset ``name`` (mirror first, then cache/download)."""
    asset = registry().get(name)
    if asset is None:
        raise AssetError(f"Unknown asset '{name}'. Known names start with 'mediapipe/' or 'makehuman/'.")
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        candidate = Path(mirror) / name
        if candidate.is_file():
            _check_hash(candidate, asset)
            return candidate
    target = cache_dir() / name
    try:
        path = pooch.retrieve(
            asset.url,
            known_hash=f"sha256:{asset.sha256}",
            fname=target.name,
            path=target.parent,
            progressbar=False,
        )
    except ValueError as error:  # pooch's hash mismatch
        raise AssetError(
            f"{name} downloaded from {asset.url} does not match sha256 {asset.sha256}: {error}"
        ) from None
    except Exception as error:  # network down, DNS, HTTP errors
        where = f"{mirror}/{name} does not exist" if mirror else f"{MIRROR_ENV} is not set"
        raise AssetError(
            f"Cannot get {name}: download from {asset.url} failed ({type(error).__name__}: {error}). "
            f"Offline? Set {MIRROR_ENV} to a folder that holds '{name}' (e.g. ../shared/assets); now {where}."
        ) from None
    return Path(path)


@functools.cache
def _verified(path: str, size: int, mtime_ns: int, sha256: str) -> bool:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == sha256


def _check_hash(path: Path, asset: Asset) -> None:
    stat = path.stat()
    if not _verified(str(path), stat.st_size, stat.st_mtime_ns, asset.sha256):
        raise AssetError(
            f"{path} does not match the pinned sha256 {asset.sha256} of {asset.name} ({asset.url}). "
            f"Replace it with the published file or unset {MIRROR_ENV}."
        )


def main() -> None:
    """Prefetch (and verify) every asset, e.g. before going offline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", nargs="?", default="", help="only assets whose name starts with this")
    args = parser.parse_args()
    from tqdm import tqdm

    for name in tqdm(names(args.prefix), desc="assets", unit="file"):
        fetch(name)


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
