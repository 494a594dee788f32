"""The embedded backend: face analysis with MediaPipe's Face Landmarker, a stand-in for OpenFace.

For each face in an image :class:`FaceAnalyzer` returns a :class:`Face` with a bounding box, a
detection confidence, 478 landmarks, the 52 blendshape scores, head pose, an aligned square crop and
17 action-unit intensities on OpenFace's 0-5 scale. :func:`face_row` turns a face into a row with
OpenFace's column names, and :func:`analyze_files` runs a list of files (optionally in several
processes) into one table.

How it works (all deterministic):

1. **Size.** An image whose longer side exceeds ``max_side`` is downscaled (INTER_AREA) for
   detection; landmarks are mapped back to the original pixels and the crop is cut from the original.
   Images above ``max_pixels`` are refused by :func:`read_image` before decoding.
2. **Views.** MediaPipe's short-range face detector sees the whole image at 128x128. It misses faces
   that touch the border (tight face crops such as LFW's) and faces smaller than about a third of the
   frame. So the image is analysed once per entry of ``pad_fractions``: as given (0.0) and with a black
   border of e.g. 0.25 x its longer side on every side. Faces found in several views are merged
   (landmark boxes with IoU >= ``match_iou``); the view with the higher detection confidence wins.
   Measured on the real-dev set: as given 550/557 found, padded 557/557, both views 557/557.
3. **Confidence.** The Face Landmarker reports no score. ``confidence`` is the score (0..1) of
   MediaPipe's FaceDetector (the ``face_detector.tflite`` inside the same ``.task`` bundle, i.e. the
   BlazeFace model the Landmarker itself uses to find faces) for the detection that matches the
   landmark face (box IoU >= ``match_iou``) in the same view. It is the probability-like score of
   "this box is a face", so a "confidence > 0.8" filter keeps confidently detected faces, as OpenFace's
   filter did. A landmark face with no matching detection gets confidence 0.0.
4. **Pose.** ``pose`` = (pitch, yaw, roll) in radians from the rotation part of MediaPipe's facial
   transformation matrix, converted to OpenFace's convention: OpenCV camera frame (x right, y down,
   z away from the camera), R = Rx(pitch) . Ry(yaw) . Rz(roll), (0, 0, 0) = looking into the camera.
5. **Crop.** The image is rotated about the eye midpoint so the eye centres (means of the eye-corner
   landmarks 33/133 and 362/263) are level; the square around all 478 landmarks in that frame,
   enlarged by ``crop_margin`` of its side on every side, is resampled to ``crop_size`` pixels.
   Where that square reaches past the image (tightly framed photos) the edge pixels are repeated.
6. **Action units.** :data:`sim2real_faces.faces.aus.AU_TABLE` maps blendshapes to FACS action units
   (see there).
7. **Geometry.** :mod:`sim2real_faces.faces.geometry` measures the 478 landmarks in a face frame
   (mouth width and opening, brow heights, jaw drop, ...), the ``geo_*`` columns.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.util
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from sim2real_faces.faces.aus import aus_from_blendshapes
from sim2real_faces.faces.columns import (
    AU_COLUMNS,
    BBOX_COLUMNS,
    BLENDSHAPE_NAMES,
    FEATURE_COLUMNS,
    POSE_COLUMNS,
)
from sim2real_faces.faces.geometry import geometry_row
from sim2real_faces.faces.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    frames_note,
    read_image_frames,
)
from sim2real_faces.params import (
    Count,
    Fraction,
    ParamsError,
    PositiveInt,
    Probability,
    Range,
    check_ranges,
)

__all__ = ["Face", "FaceAnalyzer", "FaceParams", "analyze_files", "face_row"]


@dataclass(frozen=True)
class FaceParams:
    """Params section ``face``: how faces are found, measured and cropped (used for every domain)."""

    model: str = "mediapipe/face_landmarker.task"
    """Asset name of the Face Landmarker bundle (see sim2real_faces.assets)."""
    max_faces: Count = 4
    """At most this many faces per image (the Landmarker's num_faces)."""
    min_detection_confidence: Probability = 0.5
    """Face detector threshold, for the Landmarker and for the confidence detector alike."""
    min_presence_confidence: Probability = 0.5
    """Landmarker's face-presence threshold."""
    pad_fractions: tuple[Annotated[float, Range(0.0, 2.0, what="a fraction of the longer side")], ...] = (
        0.0,
        0.25,
    )
    """Views to analyse: black border of this fraction of the longer side on every side (0 = as given)."""
    match_iou: Probability = 0.5
    """Two boxes are the same face when their intersection over union is at least this."""
    max_side: Annotated[int, Range(64, None, what="pixels")] = 1280
    """Images with a longer side above this are downscaled for detection (crops use full resolution)."""
    max_pixels: PositiveInt = DEFAULT_MAX_PIXELS
    """Images with more pixels are refused (ImageReadError) before decoding."""
    crop_size: Annotated[int, Range(8, None, what="pixels")] = 224
    """Side of the aligned square crop in pixels."""
    crop_margin: Fraction = 0.1
    """Border around the landmarks' square, as a fraction of its side, on every side of the crop."""

    def __post_init__(self) -> None:
        check_ranges(self, "face")
        if not self.pad_fractions:
            raise ParamsError(
                "params 'face.pad_fractions' = []; give 1 or more values in [0, 2], e.g. [0.0]."
            )


# Eye-corner landmarks of MediaPipe's 478-point mesh: subject's right eye (image left), then left eye.
_RIGHT_EYE = (33, 133)
_LEFT_EYE = (362, 263)
# MediaPipe (OpenGL: y up, z towards the viewer) -> OpenCV/OpenFace camera frame (y down, z forward).
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Face:
    """One analysed face; coordinates in pixels of the image passed to :meth:`FaceAnalyzer.analyze`.

    Pixel coordinates are continuous: the image spans [0, W] x [0, H], pixel (i, j) covers
    [i, i+1] x [j, j+1]. ``landmarks[:, 2]`` is MediaPipe's relative depth on the same pixel scale
    (smaller = closer to the camera).
    """

    bbox: tuple[float, float, float, float]
    """(x0, y0, x1, y1): extent of the 478 landmarks, clipped to the image."""
    confidence: float
    landmarks: np.ndarray = field(repr=False)
    blendshapes: dict[str, float] = field(repr=False)
    pose: tuple[float, float, float]
    """(pitch, yaw, roll) in radians, OpenFace's convention (see module docstring)."""
    crop: np.ndarray = field(repr=False)
    aus: dict[str, float] = field(repr=False)
    geometry: dict[str, float] = field(repr=False)
    """Landmark geometry in the face frame (:mod:`.geometry`), ``{"geo_mouth_width": ..}``."""


@dataclass(frozen=True)
class _Candidate:
    """A face found in one view, already mapped to original-image coordinates."""

    confidence: float
    box: tuple[float, float, float, float]  # landmark extent, unclipped
    landmarks: np.ndarray
    blendshapes: dict[str, float]
    matrix: np.ndarray
    view: int


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _pose(matrix: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in OpenFace's convention from MediaPipe's 4x4 facial transformation matrix."""
    rotation = np.asarray(matrix, dtype=np.float64)[:3, :3]
    rotation = rotation / np.cbrt(np.linalg.det(rotation))  # remove any uniform scale
    rotation_cv = _GL_TO_CV @ rotation @ _GL_TO_CV
    pitch, yaw, roll = Rotation.from_matrix(rotation_cv).as_euler("XYZ")
    return float(pitch), float(yaw), float(roll)


def _aligned_crop(rgb: np.ndarray, landmarks: np.ndarray, size: int, margin: float) -> np.ndarray:
    """Square crop with level eyes around the landmarks (see module docstring, step 5)."""
    points = landmarks[:, :2].astype(np.float64)
    right_eye = points[list(_RIGHT_EYE)].mean(axis=0)
    left_eye = points[list(_LEFT_EYE)].mean(axis=0)
    centre = (right_eye + left_eye) / 2.0
    dx, dy = left_eye - right_eye
    angle = math.atan2(dy, dx)
    cos, sin = math.cos(angle), math.sin(angle)
    to_level = np.array([[cos, sin], [-sin, cos]])  # rotates by -angle: the eye line becomes horizontal
    level = (points - centre) @ to_level.T
    low, high = level.min(axis=0), level.max(axis=0)
    side = float(max(high - low)) * (1.0 + 2.0 * margin)
    box_centre = (low + high) / 2.0
    # Supersample when shrinking a lot, then area-average, so large photos do not alias.
    factor = int(min(max(side / size // 1, 1), 8))
    out = size * factor
    scale = out / side
    linear = scale * to_level
    # Continuous coordinates -> OpenCV's pixel-centre convention (-0.5 in, +0.5 out).
    offset = -linear @ (centre - 0.5) - scale * box_centre + out / 2.0 - 0.5
    matrix = np.hstack([linear, offset[:, None]])
    # Out-of-image regions (tightly framed photos) repeat the edge pixels instead of black corners:
    # a black border rotated with the eyes only ever appears in photos and would give the domain away.
    crop = cv2.warpAffine(rgb, matrix, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if factor > 1:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


class FaceAnalyzer:
    """One MediaPipe Face Landmarker (IMAGE mode) plus its face detector; use as a context manager.

    >>> with FaceAnalyzer(FaceParams()) as analyzer:
    ...     faces = analyzer.analyze(read_image("photo.jpg"))
    """

    def __init__(self, params: FaceParams) -> None:
        from sim2real_faces import assets

        self.params = params
        task = assets.fetch(params.model)  # before importing MediaPipe: a bad file fails fast

        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        with zipfile.ZipFile(task) as bundle:
            detector_model = bundle.read("face_detector.tflite")
        self._landmarker = vision.FaceLandmarker.create_from_options(
            vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(task)),
                running_mode=vision.RunningMode.IMAGE,
                num_faces=params.max_faces,
                min_face_detection_confidence=params.min_detection_confidence,
                min_face_presence_confidence=params.min_presence_confidence,
                output_face_blendshapes=True,
                output_facial_transformation_matrixes=True,
            )
        )
        self._detector = vision.FaceDetector.create_from_options(
            vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_buffer=detector_model),
                running_mode=vision.RunningMode.IMAGE,
                min_detection_confidence=params.min_detection_confidence,
            )
        )
        self._closed = False

    def close(self) -> None:
        """Release MediaPipe's graphs (idempotent)."""
        if not self._closed:
            self._closed = True
            self._landmarker.close()
            self._detector.close()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def analyze(self, rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 (H, W, 3) image, most confident first (ties: leftmost, topmost)."""
        if self._closed:
            raise RuntimeError("FaceAnalyzer is closed.")
        if not (
            isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        ):
            raise ValueError(
                f"analyze() needs an RGB uint8 array of shape (H, W, 3); got "
                f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}. Use read_image()."
            )
        height, width = rgb.shape[:2]
        params = self.params
        scale = min(1.0, params.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / width, size[1] / height
        else:
            small, scale_x, scale_y = rgb, 1.0, 1.0

        candidates: list[_Candidate] = []
        for view, fraction in enumerate(params.pad_fractions):
            candidates += self._analyze_view(small, fraction, view, scale_x, scale_y)
        # Merge views: most confident first; a candidate overlapping an accepted face is the same face.
        candidates.sort(key=lambda c: (-c.confidence, c.view, c.box[0], c.box[1]))
        accepted: list[_Candidate] = []
        for candidate in candidates:
            if all(_iou(candidate.box, kept.box) < params.match_iou for kept in accepted):
                accepted.append(candidate)
        accepted = accepted[: params.max_faces]
        accepted.sort(key=lambda c: (-c.confidence, c.box[0], c.box[1]))
        return [self._face(rgb, candidate) for candidate in accepted]

    def _analyze_view(
        self, image: np.ndarray, fraction: float, view: int, scale_x: float, scale_y: float
    ) -> list[_Candidate]:
        import mediapipe as mp

        pad = round(fraction * max(image.shape[:2]))
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        image = np.ascontiguousarray(image)
        view_h, view_w = image.shape[:2]
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=image)
        result = self._landmarker.detect(mp_image)
        if not result.face_landmarks:
            return []
        detections = []
        for detection in self._detector.detect(mp_image).detections:
            box = detection.bounding_box
            x0, y0 = float(box.origin_x), float(box.origin_y)
            detections.append(
                ((x0, y0, x0 + box.width, y0 + box.height), float(detection.categories[0].score))
            )

        candidates = []
        used: set[int] = set()
        for i, normalized in enumerate(result.face_landmarks):
            points = np.array(
                [(p.x * view_w, p.y * view_h, p.z * view_w) for p in normalized], dtype=np.float64
            )
            view_box = (*points[:, :2].min(axis=0), *points[:, :2].max(axis=0))
            # The detection of this face: best IoU among unused detections (greedy in landmarker order).
            best, best_iou = -1, 0.0
            for j, (det_box, _) in enumerate(detections):
                overlap = _iou(view_box, det_box)
                if j not in used and overlap >= self.params.match_iou and overlap > best_iou:
                    best, best_iou = j, overlap
            confidence = 0.0
            if best >= 0:
                used.add(best)
                confidence = detections[best][1]
            names = [c.category_name for c in result.face_blendshapes[i]]
            if tuple(names) != BLENDSHAPE_NAMES:
                raise RuntimeError(
                    f"{self.params.model} returned blendshapes {names[:3]}..; this code expects the 52 "
                    f"outputs of Google's face_landmarker.task v1 (BLENDSHAPE_NAMES)."
                )
            blendshapes = {c.category_name: float(c.score) for c in result.face_blendshapes[i]}
            # Back to original-image pixels: remove the border, undo the detection downscale.
            points[:, 0] = (points[:, 0] - pad) / scale_x
            points[:, 1] = (points[:, 1] - pad) / scale_y
            points[:, 2] = points[:, 2] / scale_x
            box = (*points[:, :2].min(axis=0), *points[:, :2].max(axis=0))
            candidates.append(
                _Candidate(
                    confidence=confidence,
                    box=tuple(float(v) for v in box),
                    landmarks=points.astype(np.float32),
                    blendshapes=blendshapes,
                    matrix=np.asarray(result.facial_transformation_matrixes[i], dtype=np.float64),
                    view=view,
                )
            )
        return candidates

    def _face(self, rgb: np.ndarray, candidate: _Candidate) -> Face:
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = candidate.box
        bbox = (
            float(np.clip(x0, 0, width)),
            float(np.clip(y0, 0, height)),
            float(np.clip(x1, 0, width)),
            float(np.clip(y1, 0, height)),
        )
        return Face(
            bbox=bbox,
            confidence=candidate.confidence,
            landmarks=candidate.landmarks,
            blendshapes=candidate.blendshapes,
            pose=_pose(candidate.matrix),
            crop=_aligned_crop(rgb, candidate.landmarks, self.params.crop_size, self.params.crop_margin),
            aus=aus_from_blendshapes(candidate.blendshapes),
            geometry=geometry_row(candidate.landmarks, "mediapipe"),
        )


def face_row(face: Face | None, index: int = 0) -> dict[str, Any]:
    """One table row with OpenFace's column names: face, success, confidence, bbox_*, pose_R*, AU*_r, bs_*,
    geo_*.

    ``face=None`` gives the row of an image with no face: success 0, confidence 0.0, NaN features.
    """
    row: dict[str, Any] = {"face": index}
    if face is None:
        row["success"] = 0
        row["confidence"] = 0.0
        row.update(dict.fromkeys(FEATURE_COLUMNS[1:], math.nan))
        return row
    row["success"] = 1
    row["confidence"] = face.confidence
    row.update(zip(BBOX_COLUMNS, face.bbox, strict=True))
    row.update(zip(POSE_COLUMNS, face.pose, strict=True))
    row.update({column: face.aus[column] for column in AU_COLUMNS})
    row.update({f"bs_{name}": face.blendshapes[name] for name in BLENDSHAPE_NAMES})
    row.update(face.geometry)
    return row


# ---------------------------------------------------------------------------------------------------
# Many files, one table.

_WORKER_ANALYZER: FaceAnalyzer | None = None
_WORKER_ERROR: Exception | None = None


def _worker_init(params: FaceParams) -> None:
    global _WORKER_ANALYZER, _WORKER_ERROR
    try:
        _WORKER_ANALYZER = FaceAnalyzer(params)
    except Exception as error:
        # Raised again by the first task, so it reaches the caller as itself (e.g. the AssetError naming
        # the file, URL and mirror setting): an initializer that raises only breaks the pool.
        _WORKER_ERROR = error
        return
    # Close MediaPipe when the worker's loop ends (multiprocessing runs finalizers then), before the
    # interpreter shuts down the thread pool MediaPipe's close() needs.
    multiprocessing.util.Finalize(None, _WORKER_ANALYZER.close, exitpriority=10)


def _worker_task(item: tuple[str, str | None]) -> list[dict[str, Any]]:
    if _WORKER_ERROR is not None:
        raise _WORKER_ERROR
    assert _WORKER_ANALYZER is not None, "worker not initialised"
    return _analyze_file(_WORKER_ANALYZER, *item)


def _analyze_file(analyzer: FaceAnalyzer, path: str, crop_path: str | None) -> list[dict[str, Any]]:
    """Rows of one file (see analyze_files); writes the most confident face's crop when asked."""
    try:
        rgb, n_frames = read_image_frames(path, max_pixels=analyzer.params.max_pixels)
    except ImageReadError as error:
        row = face_row(None, 0)
        row["confidence"] = math.nan
        return [{"file": path, "status": "unreadable", "reason": str(error), **row, "crop": "", "note": ""}]
    note = frames_note(n_frames)
    faces = analyzer.analyze(rgb)
    if not faces:
        return [
            {"file": path, "status": "no_face", "reason": "", **face_row(None, 0), "crop": "", "note": note}
        ]
    rows = []
    for index, face in enumerate(faces):
        crop = ""
        if index == 0 and crop_path is not None:
            target = Path(crop_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face.crop).save(target, format="PNG")
            crop = crop_path
        rows.append(
            {"file": path, "status": "ok", "reason": "", **face_row(face, index), "crop": crop, "note": note}
        )
    return rows


def analyze_files(
    paths: Sequence[Path | str],
    params: FaceParams,
    crop_paths: Sequence[Path | str] | None = None,
    workers: int = 1,
    desc: str = "faces",
) -> pd.DataFrame:
    """Analyse image files into one table, in the order of ``paths`` whatever the number of workers.

    Rows: one per detected face (``face`` = 0, 1, .. by confidence, ``status="ok"``); one ``success=0``
    row for an image with no face (``status="no_face"``); one row with ``status="unreadable"`` and the
    error in ``reason`` for a file :func:`read_image` refuses. Columns: file (the path as given), face,
    status, reason, success, confidence, bbox_*, pose_R*, AU*_r, bs_*, crop, note (says when a file
    has several frames and only the first was read; "" otherwise). With ``crop_paths`` (one
    output path per input) the most confident face's aligned crop is written there as PNG and its row's
    ``crop`` holds that path; ``crop`` is "" otherwise. ``workers`` > 1 runs that many spawned
    processes, each with its own :class:`FaceAnalyzer`.
    """
    files = [str(p) for p in paths]
    if crop_paths is not None and len(crop_paths) != len(files):
        raise ValueError(
            f"crop_paths has {len(crop_paths)} entries for {len(files)} paths; give one per path."
        )
    crops = [str(c) for c in crop_paths] if crop_paths is not None else [None] * len(files)
    if workers < 1:
        raise ValueError(f"workers = {workers}; use 1 or more.")
    items = list(zip(files, crops, strict=True))
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(items), desc=desc, unit="img") as progress:
        if workers == 1 or len(items) <= 1:
            with FaceAnalyzer(params) as analyzer:
                for item in items:
                    rows += _analyze_file(analyzer, *item)
                    progress.update()
        else:
            from sim2real_faces import assets

            assets.fetch(params.model)  # a missing or wrong model file fails here, before any process starts
            # A process pool that fails (BrokenProcessPool) instead of hanging if a worker dies; errors
            # raised in a worker (including its set-up) come back as themselves.
            chunksize = max(1, min(8, len(items) // (4 * workers)))
            try:
                with ProcessPoolExecutor(
                    max_workers=min(workers, len(items)),
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(params,),
                ) as pool:
                    try:
                        for file_rows in pool.map(_worker_task, items, chunksize=chunksize):
                            rows += file_rows
                            progress.update()
                    except BaseException:
                        # Ctrl-C, SIGTERM or a worker's error: drop the queued files instead of
                        # analysing them all before the error reaches the caller.
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
            except BrokenProcessPool as error:
                raise RuntimeError(
                    f"a face-analysis worker process died ({error}); run with 1 worker (param "
                    f"real.workers or extract.workers = 1) to see the failure in this process."
                ) from error
    columns = ["file", "face", "status", "reason", "success", *FEATURE_COLUMNS, "crop", "note"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"face": "int64", "success": "int64"})
