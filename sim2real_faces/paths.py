"""Where every stage reads and writes, relative to the repository root (DVC runs stages there)."""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")

# Real photos: the input folder is a param (real.photo_dir); these are prepare_real's outputs.
REAL_DIR = DATA / "real"
REAL_CROPS = REAL_DIR / "crops"
REAL_FEATURES = REAL_DIR / "features.csv"

# Synthetic data: generate -> downscale -> extract -> filter.
SYNTH_DIR = DATA / "synthetic"
SYNTH_RAW = SYNTH_DIR / "raw"  # images/ + metadata.csv at full resolution
SYNTH_IMAGES = SYNTH_DIR / "images"  # images/ + metadata.csv after downscaling
SYNTH_CROPS = SYNTH_DIR / "crops"
SYNTH_FEATURES = SYNTH_DIR / "features.csv"
FILTERED = SYNTH_DIR / "filtered.csv"
SPLIT = DATA / "split.csv"

MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")
