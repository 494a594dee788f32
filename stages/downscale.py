"""Stage ``downscale``: the rendered dataset at the training size, the resolution study, the contact sheet.

Reads ``data/synthetic/raw`` (images/ + metadata.csv) and params ``downscale`` and ``face``; writes

- ``data/synthetic/images/``: images/ resized with INTER_AREA to ``downscale.width`` x ``downscale.height``
  (the study: 820x571) and the same metadata.csv;
- ``metrics/resolution.json`` + ``plots/resolution.png``: the study's Table 2 (face detection rate and
  memory of the same ``n_frames`` frames at each size of ``downscale.resolution_study.sizes``);
- ``plots/contact_sheet.png``: a row per class, a column per identity.

The detection rate of the whole downscaled dataset is the extract stage's (metrics/synthetic_faces.json).
"""

from __future__ import annotations

import time

from sim2real_faces.faces import FaceParams
from sim2real_faces.faces.resolution import plot_resolution, resolution_study
from sim2real_faces.io import write_json
from sim2real_faces.params import load_params, load_section
from sim2real_faces.paths import METRICS, PLOTS, SYNTH_IMAGES, SYNTH_RAW
from sim2real_faces.render.downscale import DownscaleParams, contact_sheet, downscale_dataset

RESOLUTION_METRICS = METRICS / "resolution.json"
RESOLUTION_PLOT = PLOTS / "resolution.png"
CONTACT_SHEET = PLOTS / "contact_sheet.png"


def main() -> None:
    params = load_params()
    down = load_section(DownscaleParams, "downscale", params)
    face = load_section(FaceParams, "face", params)
    down.validate()
    start = time.perf_counter()
    table = downscale_dataset(SYNTH_RAW, SYNTH_IMAGES, down)
    print(f"downscale: {len(table)} images -> {SYNTH_IMAGES} ({down.width}x{down.height})")
    contact_sheet(SYNTH_IMAGES / "images", table, down.contact_sheet, CONTACT_SHEET)
    print(f"contact sheet -> {CONTACT_SHEET}")
    if down.resolution_study.enabled:
        study = resolution_study(SYNTH_RAW, list(table["file"]), down, face)
        write_json(RESOLUTION_METRICS, study)
        plot_resolution(study, RESOLUTION_PLOT)
        for s in study["sizes"]:
            print(
                f"  {s['width']}x{s['height']}: detection {100 * s['detection_rate']:.1f}% "
                f"memory {s['memory_mb']:.1f} MB (PNG {s['png_mb']:.1f} MB)"
            )
    else:
        write_json(
            RESOLUTION_METRICS, {"n_frames": 0, "sizes": [], "skipped": "downscale.resolution_study.enabled"}
        )
    print(f"downscale stage done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    from sim2real_faces.cli import run_stage

    run_stage(main)
