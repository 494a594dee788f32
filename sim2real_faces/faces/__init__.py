"""Face analysis: find faces, measure them (action units, blendshapes, head pose), crop them.

- :mod:`.images`: reading photos of any common kind into RGB arrays; scanning photo folders.
- :mod:`.columns`: every column name of the face tables; the feature groups (params ``features``).
- :mod:`.aus`: action units from MediaPipe's blendshapes.
- :mod:`.analysis`: the embedded backend (MediaPipe's Face Landmarker), params section ``face``.
- :mod:`.openface`: the OpenFace 2.x backend (params ``extract.openface``).
- :mod:`.backend`: one call for both backends, as the stages use them.
- :mod:`.table`: the face table joined with an image folder's metadata, and its detection rates.
- :mod:`.sheet`: the sheet of synthetic face crops.
- :mod:`.resolution`: the downscale stage's resolution study. Not imported here: it resizes through
  :mod:`sim2real_faces.render.downscale`, which holds its params; import it as a module.
"""

from sim2real_faces.faces.analysis import Face, FaceAnalyzer, FaceParams, analyze_files, face_row
from sim2real_faces.faces.aus import AU_SCALE, AU_TABLE, aus_from_blendshapes
from sim2real_faces.faces.backend import BACKENDS, Backend, analyse_images, check_ready, crop_path_for
from sim2real_faces.faces.columns import (
    AU_COLUMNS,
    BBOX_COLUMNS,
    BLENDSHAPE_COLUMNS,
    BLENDSHAPE_NAMES,
    FEATURE_COLUMNS,
    GROUPS,
    POSE_COLUMNS,
    STUDY_AU_COLUMNS,
    FeatureError,
    FeatureGroup,
    FeatureParams,
    feature_columns,
    require_columns,
)
from sim2real_faces.faces.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    SKIP_REASONS,
    FolderEntry,
    ImageReadError,
    frames_note,
    is_image_file,
    read_image,
    read_image_frames,
    scan_folder,
)
from sim2real_faces.faces.openface import (
    OpenFaceError,
    OpenFaceNotFoundError,
    OpenFaceOutputError,
    OpenFaceParams,
    OpenFaceRunError,
    openface_table,
)
from sim2real_faces.faces.sheet import CropsSheetError, crops_sheet
from sim2real_faces.faces.table import ExtractError, detection_metrics, merge_metadata

__all__ = [
    "AU_COLUMNS",
    "AU_SCALE",
    "AU_TABLE",
    "BACKENDS",
    "BBOX_COLUMNS",
    "BLENDSHAPE_COLUMNS",
    "BLENDSHAPE_NAMES",
    "DEFAULT_MAX_PIXELS",
    "FEATURE_COLUMNS",
    "GROUPS",
    "IMAGE_SUFFIXES",
    "POSE_COLUMNS",
    "SKIP_REASONS",
    "STUDY_AU_COLUMNS",
    "Backend",
    "CropsSheetError",
    "ExtractError",
    "Face",
    "FaceAnalyzer",
    "FaceParams",
    "FeatureError",
    "FeatureGroup",
    "FeatureParams",
    "FolderEntry",
    "ImageReadError",
    "OpenFaceError",
    "OpenFaceNotFoundError",
    "OpenFaceOutputError",
    "OpenFaceParams",
    "OpenFaceRunError",
    "analyse_images",
    "analyze_files",
    "aus_from_blendshapes",
    "check_ready",
    "crop_path_for",
    "crops_sheet",
    "detection_metrics",
    "face_row",
    "feature_columns",
    "frames_note",
    "is_image_file",
    "merge_metadata",
    "openface_table",
    "read_image",
    "read_image_frames",
    "require_columns",
    "scan_folder",
]
