"""The resolution study (the study's Table 2): detection rate and memory of the same frames at several sizes.

Params: section ``downscale.resolution_study`` (:class:`ResolutionStudyParams`, held by
:class:`sim2real_faces.render.downscale.DownscaleParams`); the downscale stage writes
``metrics/resolution.json`` and ``plots/resolution.png``. MediaPipe runs here (in
:func:`.analysis.analyze_files`' own worker processes), never GL.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim2real_faces.faces.analysis import analyze_files

if TYPE_CHECKING:
    from sim2real_faces.render.downscale import DownscaleParams


@dataclass(frozen=True)
class ResolutionStudyParams:
    """The resolution study (section ``downscale.resolution_study``): Table 2 on ``n_frames`` frames."""

    enabled: bool = True
    n_frames: int = 100  # evenly spaced over the sorted file list (every class); the study used 300
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(1792, 1267), (820, 571), (256, 181)])
    confidence_threshold: float = 0.8  # also report the share of frames whose best face passes this


def study_frames(files: Sequence[str], n: int) -> list[str]:
    """``n`` files evenly spaced over the sorted list (all of them when there are fewer)."""
    ordered = sorted(files)
    if n >= len(ordered):
        return ordered
    picks = np.unique(np.linspace(0, len(ordered) - 1, n).round().astype(int))
    return [ordered[i] for i in picks]


def resolution_study(
    raw_dir: Path, files: Sequence[str], params: DownscaleParams, face_params: Any
) -> dict[str, Any]:
    """Detection rate and memory of the same frames at each size of ``params.resolution_study.sizes``.

    Each size is resized from the raw render (INTER_AREA, as the downscale stage resizes) and analysed
    by :func:`.analysis.analyze_files` with ``max_side`` raised to that size, so the detector sees
    every resolution as it is. Memory: the frames as uint8 RGB arrays (``memory_mb``, the
    in-memory size) and as PNG files (``png_mb``); MB = 10^6 bytes.
    """
    # Imported here: render.downscale holds this study's params (ResolutionStudyParams) in its section.
    from sim2real_faces.render.downscale import resize_files

    study = params.resolution_study
    frames = study_frames(files, study.n_frames)
    results = []
    with tempfile.TemporaryDirectory(prefix="resolution-") as tmp:
        for width, height in study.sizes:
            folder = Path(tmp) / f"{width}x{height}"
            folder.mkdir()
            pairs = [(raw_dir / "images" / f, folder / f) for f in frames]
            resize_files(
                pairs, (width, height), params.workers, params.png_compression, desc=f"{width}x{height}"
            )
            fp = dataclasses.replace(face_params, max_side=max(width, height, face_params.max_side))
            table = analyze_files(
                [p for _, p in pairs], fp, workers=params.workers, desc=f"faces {width}x{height}"
            )
            best = table.sort_values(["file", "face"]).groupby("file", sort=False).first()
            found = best["status"] == "ok"
            conf = pd.to_numeric(best["confidence"], errors="coerce")
            results.append(
                {
                    "width": width,
                    "height": height,
                    "n_frames": len(frames),
                    "detection_rate": round(float(found.mean()), 4),
                    "confident_rate": round(float((found & (conf > study.confidence_threshold)).mean()), 4),
                    "confidence_threshold": study.confidence_threshold,
                    "mean_confidence": round(float(conf[found].mean()), 4) if found.any() else None,
                    "unreadable": int((best["status"] == "unreadable").sum()),
                    "memory_mb": round(len(frames) * width * height * 3 / 1e6, 2),
                    "png_mb": round(sum(p.stat().st_size for _, p in pairs) / 1e6, 2),
                    "detector_max_side": fp.max_side,
                }
            )
    return {"n_frames": len(frames), "frames": "evenly spaced over the sorted raw files", "sizes": results}


def plot_resolution(study: dict[str, Any], path: Path) -> None:
    """Detection rate and memory per size, side by side (the study's Table 2 as a figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = study["sizes"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not sizes:  # the study is switched off: say so in the figure rather than leaving a stale one
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"resolution study skipped ({study.get('skipped', 'no sizes')})", ha="center")
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        return
    labels = [f"{s['width']}x{s['height']}" for s in sizes]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.bar(labels, [100 * s["detection_rate"] for s in sizes], color="#4c72b0")
    ax1.set_ylabel("faces detected (%)")
    ax1.set_ylim(0, 105)
    ax1.set_title(f"detection rate ({study['n_frames']} frames)")
    for i, s in enumerate(sizes):
        ax1.text(
            i, 100 * s["detection_rate"] + 1, f"{100 * s['detection_rate']:.1f}", ha="center", fontsize=8
        )
    x = np.arange(len(sizes))
    ax2.bar(x - 0.2, [s["memory_mb"] for s in sizes], 0.4, label="RGB arrays", color="#55a868")
    ax2.bar(x + 0.2, [s["png_mb"] for s in sizes], 0.4, label="PNG files", color="#c44e52")
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("MB")
    ax2.set_title(f"memory of {study['n_frames']} frames")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
