"""Action units from MediaPipe's blendshapes: the one mapping (:data:`AU_TABLE`) and its use.

MediaPipe reports 52 blendshapes (ARKit names, 0..1), not FACS action units; :func:`aus_from_blendshapes`
turns them into 17 action-unit intensities on OpenFace's 0-5 scale, under OpenFace's column names.
"""

from __future__ import annotations

AU_SCALE = 5.0
"""OpenFace's intensity scale: AU = AU_SCALE * clip(weighted blendshape sum, 0, 1)."""

# The one mapping from MediaPipe's blendshapes (ARKit names, 0..1) to FACS action units.
# AU = AU_SCALE * clip(sum(weight * blendshape), 0, 1). Left/right pairs are averaged (weights 0.5).
# It is a linear rescale, not a calibration against FACS-coded intensities: use it for features that
# move with the same muscles as OpenFace's AUs, not as FACS intensity levels A-E.
# Measured on the 557 real-dev photos: cheekSquint and noseSneer never leave 0 in Google's
# face_blendshapes model, so AU06 and AU09 are constant 0; AU05 and AU14 stay below 0.25 on 95% of photos.
AU_TABLE: dict[str, tuple[str, dict[str, float]]] = {
    "AU01": ("inner brow raiser", {"browInnerUp": 1.0}),
    "AU02": ("outer brow raiser", {"browOuterUpLeft": 0.5, "browOuterUpRight": 0.5}),
    "AU04": ("brow lowerer", {"browDownLeft": 0.5, "browDownRight": 0.5}),
    "AU05": ("upper lid raiser", {"eyeWideLeft": 0.5, "eyeWideRight": 0.5}),
    "AU06": ("cheek raiser", {"cheekSquintLeft": 0.5, "cheekSquintRight": 0.5}),
    "AU07": ("lid tightener", {"eyeSquintLeft": 0.5, "eyeSquintRight": 0.5}),
    "AU09": ("nose wrinkler", {"noseSneerLeft": 0.5, "noseSneerRight": 0.5}),
    "AU10": ("upper lip raiser", {"mouthUpperUpLeft": 0.5, "mouthUpperUpRight": 0.5}),
    "AU12": ("lip corner puller", {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}),
    "AU14": ("dimpler", {"mouthDimpleLeft": 0.5, "mouthDimpleRight": 0.5}),
    "AU15": ("lip corner depressor", {"mouthFrownLeft": 0.5, "mouthFrownRight": 0.5}),
    # mouthShrugLower pushes the lower lip up and out: the chin raiser's visible effect.
    "AU17": ("chin raiser", {"mouthShrugLower": 1.0}),
    "AU20": ("lip stretcher", {"mouthStretchLeft": 0.5, "mouthStretchRight": 0.5}),
    # ARKit has no lip tightener; pressing the lips together (AU24, which co-occurs with AU23) is nearest.
    "AU23": ("lip tightener", {"mouthPressLeft": 0.5, "mouthPressRight": 0.5}),
    # Lips part when the jaw opens without the lips being held closed, or when the lower lip is pulled
    # down (teeth showing in a grin or a snarl with the jaw nearly closed).
    "AU25": (
        "lips part",
        {"jawOpen": 1.0, "mouthClose": -1.0, "mouthLowerDownLeft": 0.5, "mouthLowerDownRight": 0.5},
    ),
    "AU26": ("jaw drop", {"jawOpen": 1.0}),
    "AU45": ("blink", {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5}),
}


def aus_from_blendshapes(blendshapes: dict[str, float]) -> dict[str, float]:
    """Action-unit intensities {"AU01_r": ..} on 0-5 from blendshape scores, through :data:`AU_TABLE`."""
    aus = {}
    for au, (_, weights) in AU_TABLE.items():
        value = sum(weight * blendshapes[name] for name, weight in weights.items())
        aus[f"{au}_r"] = AU_SCALE * min(max(value, 0.0), 1.0)
    return aus
