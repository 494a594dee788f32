"""Face analysis on real photos from ../shared/data/real-dev, and every kind of bad input."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sim2real_faces.faces import (
    AU_COLUMNS,
    AU_TABLE,
    BLENDSHAPE_COLUMNS,
    BLENDSHAPE_NAMES,
    FEATURE_COLUMNS,
    POSE_COLUMNS,
    FaceAnalyzer,
    FaceParams,
    ImageReadError,
    analyze_files,
    aus_from_blendshapes,
    face_row,
    read_image,
)
from sim2real_faces.faces.geometry import GEOMETRY_COLUMNS, geometry_row

CROP = 96
PARAMS = FaceParams(crop_size=CROP)


@pytest.fixture(scope="module")
def analyzer():
    with FaceAnalyzer(PARAMS) as shared:
        yield shared


@pytest.fixture(scope="module")
def manifest(real_dev: Path) -> pd.DataFrame:
    table = pd.read_csv(real_dev / "manifest.csv")
    table["file"] = [str(real_dev / path) for path in table["path"]]
    return table


def _pick(manifest: pd.DataFrame, cls: str, n: int) -> list[str]:
    """n photos of a class spread over its rows (all three datasets), deterministic."""
    rows = manifest[manifest["class"] == cls].sort_values("path")
    return list(rows["file"].iloc[np.linspace(0, len(rows) - 1, n).round().astype(int)])


@pytest.fixture(scope="module")
def by_class(analyzer: FaceAnalyzer, manifest: pd.DataFrame) -> dict[str, list]:
    """(file, image, faces) for 10 photos per class."""
    result = {}
    for cls in ("angry", "crying", "happy"):
        result[cls] = [
            (f, img, analyzer.analyze(img)) for f in _pick(manifest, cls, 10) for img in [read_image(f)]
        ]
    return result


# --- real photos ------------------------------------------------------------------------------------


def test_every_photo_has_one_face(by_class):
    for items in by_class.values():
        for file, _, faces in items:
            assert len(faces) == 1, file


def test_happy_scores_higher_lip_corner_puller_than_angry(by_class):
    au12 = {
        cls: np.mean([faces[0].aus["AU12_r"] for _, _, faces in items]) for cls, items in by_class.items()
    }
    assert au12["happy"] > au12["angry"] + 1.0, au12
    assert au12["happy"] > au12["crying"] + 1.0, au12
    au01 = {
        cls: np.mean([faces[0].aus["AU01_r"] for _, _, faces in items]) for cls, items in by_class.items()
    }
    assert au01["crying"] > au01["angry"], au01  # sadness raises the inner brows


def test_geometry_of_real_photos_tells_happy_and_crying_apart(by_class):
    """Smiles widen the mouth and raise its corners; sadness raises the inner brows above a frown's."""

    def mean(column: str, cls: str) -> float:
        return float(np.mean([faces[0].geometry[column] for _, _, faces in by_class[cls]]))

    assert mean("geo_mouth_width", "happy") > mean("geo_mouth_width", "crying") + 0.05
    assert mean("geo_corner_raise", "happy") > mean("geo_corner_raise", "crying") + 0.03
    assert mean("geo_brow_inner_raise", "crying") > mean("geo_brow_inner_raise", "angry")


def test_face_fields_are_complete_and_in_range(by_class):
    for items in by_class.values():
        for file, image, faces in items:
            face = faces[0]
            height, width = image.shape[:2]
            x0, y0, x1, y1 = face.bbox
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (file, face.bbox)
            assert (x1 - x0) > 0.3 * width, file  # these are face photos: the face is large
            assert face.crop.shape == (CROP, CROP, 3) and face.crop.dtype == np.uint8
            assert face.crop.std() > 10, file  # a real picture, not a blank
            assert face.landmarks.shape == (478, 3)
            inside = (face.landmarks[:, 0] >= x0 - 1) & (face.landmarks[:, 0] <= x1 + 1)
            assert inside.mean() > 0.9, file
            assert 0.5 <= face.confidence <= 1.0, file
            assert set(face.blendshapes) == set(BLENDSHAPE_NAMES)
            assert all(0.0 <= v <= 1.0 for v in face.blendshapes.values())
            assert list(face.aus) == AU_COLUMNS and all(0.0 <= v <= 5.0 for v in face.aus.values())
            assert face.aus == aus_from_blendshapes(face.blendshapes)
            assert face.geometry == geometry_row(face.landmarks, "mediapipe")
            assert list(face.geometry) == GEOMETRY_COLUMNS and all(map(math.isfinite, face.geometry.values()))
            assert all(abs(angle) < 0.8 for angle in face.pose), (file, face.pose)  # near-frontal photos


def test_confidence_of_real_photos_passes_the_study_filter(by_class):
    confidences = [items_faces[0].confidence for items in by_class.values() for *_, items_faces in items]
    assert np.mean(np.array(confidences) > 0.8) >= 0.8, confidences


def test_confidence_drops_for_blurred_faces(analyzer, by_class):
    for file, image, faces in by_class["happy"][:4]:
        blurred = np.ascontiguousarray(cv2.GaussianBlur(image, (0, 0), image.shape[0] / 25))
        found = analyzer.analyze(blurred)
        assert not found or found[0].confidence < min(0.8, faces[0].confidence - 0.1), file


def test_pose_mirrors_with_the_image(analyzer, by_class):
    for file, image, faces in by_class["angry"][:4]:
        pitch, yaw, roll = faces[0].pose
        m_pitch, m_yaw, m_roll = analyzer.analyze(np.ascontiguousarray(image[:, ::-1]))[0].pose
        assert m_pitch == pytest.approx(pitch, abs=0.06), file
        assert m_yaw == pytest.approx(-yaw, abs=0.06), file
        assert m_roll == pytest.approx(-roll, abs=0.06), file


def test_crop_levels_a_tilted_face(analyzer, manifest):
    image = read_image(manifest[manifest.dataset == "jaffe"]["file"].iloc[0])
    size = 400
    canvas = cv2.copyMakeBorder(image, 72, 72, 72, 72, cv2.BORDER_REPLICATE)
    tilt = cv2.getRotationMatrix2D((size / 2, size / 2), 25, 1.0)  # 25 degrees counter-clockwise
    tilted = cv2.warpAffine(canvas, tilt, (size, size), borderMode=cv2.BORDER_REPLICATE)
    face = analyzer.analyze(tilted)[0]
    assert abs(face.pose[2]) == pytest.approx(math.radians(25), abs=0.1)
    level = analyzer.analyze(face.crop)[0]
    assert abs(level.pose[2]) < 0.06  # eyes level in the crop
    assert level.crop.shape == (CROP, CROP, 3)


def test_tiny_ck_photos_and_tight_crops_are_found(analyzer, manifest):
    ck = manifest[manifest.dataset == "ckplus48"]["file"].iloc[:5]
    for file in ck:
        image = read_image(file)
        assert image.shape == (48, 48, 3)
        assert len(analyzer.analyze(image)) == 1, file
    # A tight LFW crop: MediaPipe misses it as given; the padded view finds it.
    tight = read_image(manifest.set_index("path").loc["muxspace/angry/Colin_Powell_0043.jpg", "file"])
    assert len(analyzer.analyze(tight)) == 1
    with FaceAnalyzer(FaceParams(pad_fractions=(0.0,))) as unpadded:
        assert unpadded.analyze(tight) == []


def test_two_faces_both_found_most_confident_first(analyzer, manifest):
    jaffe = manifest[manifest.dataset == "jaffe"]["file"]
    left, right = read_image(jaffe.iloc[0]), read_image(jaffe.iloc[30])
    pair = np.ascontiguousarray(np.hstack([left, right]))
    faces = analyzer.analyze(pair)
    assert len(faces) == 2
    assert faces[0].confidence >= faces[1].confidence
    centres = sorted((f.bbox[0] + f.bbox[2]) / 2 for f in faces)
    assert centres[0] < 256 < centres[1]


def test_no_face(analyzer):
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    assert analyzer.analyze(np.ascontiguousarray(gradient)) == []


def test_analyze_rejects_non_rgb_arrays(analyzer):
    with pytest.raises(ValueError, match="RGB uint8"):
        analyzer.analyze(np.zeros((50, 50), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        analyzer.analyze(np.zeros((50, 50, 3), np.float32))


# --- the AU table and rows -------------------------------------------------------------------------


def test_au_table_maps_blendshapes_linearly_and_clips():
    blendshapes = dict.fromkeys(BLENDSHAPE_NAMES, 0.0)
    blendshapes.update(mouthSmileLeft=0.6, mouthSmileRight=0.4, jawOpen=0.9, mouthLowerDownLeft=0.6)
    blendshapes.update(mouthLowerDownRight=0.6, browInnerUp=0.2)
    aus = aus_from_blendshapes(blendshapes)
    assert aus["AU12_r"] == pytest.approx(2.5)
    assert aus["AU26_r"] == pytest.approx(4.5)
    assert aus["AU25_r"] == pytest.approx(5.0)  # 0.9 + 0.6 clipped to 1
    assert aus["AU01_r"] == pytest.approx(1.0)
    assert aus["AU04_r"] == 0.0
    assert len(AU_TABLE) == 17 and all(n in BLENDSHAPE_NAMES for _, w in AU_TABLE.values() for n in w)


def test_aligned_crop_maps_the_landmark_square_pixel_exactly():
    from sim2real_faces.faces.analysis import _aligned_crop

    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :, 0] = np.arange(40)[None, :] * 5  # red encodes x, green encodes y
    image[:, :, 1] = np.arange(40)[:, None] * 5
    points = np.full((478, 3), 20.0)
    points[0, :2], points[1, :2] = (10, 10), (30, 30)  # landmark square [10, 30] in continuous coordinates
    points[[33, 133, 362, 263], :2] = [(12, 15), (14, 15), (26, 15), (28, 15)]  # eyes level
    crop = _aligned_crop(image, points, size=20, margin=0.0)
    assert list(crop[0, :, 0] // 5) == list(range(10, 30))
    assert list(crop[:, 0, 1] // 5) == list(range(10, 30))


def test_face_row_uses_openface_names(by_class):
    face = by_class["happy"][0][2][0]
    row = face_row(face, 0)
    assert list(row) == ["face", "success", *FEATURE_COLUMNS]
    assert row["success"] == 1 and row["confidence"] == face.confidence
    assert POSE_COLUMNS == ["pose_Rx", "pose_Ry", "pose_Rz"]
    assert row["AU12_r"] == face.aus["AU12_r"] and row["bs_jawOpen"] == face.blendshapes["jawOpen"]
    assert row["geo_mouth_open"] == face.geometry["geo_mouth_open"]
    empty = face_row(None, 0)
    assert list(empty) == list(row) and empty["success"] == 0 and empty["confidence"] == 0.0
    assert all(
        math.isnan(empty[c]) for c in [*AU_COLUMNS, *BLENDSHAPE_COLUMNS, *POSE_COLUMNS, *GEOMETRY_COLUMNS]
    )


def test_params_are_checked():
    with pytest.raises(ValueError, match=r"face\.crop_margin"):
        FaceParams(crop_margin=-0.1)
    with pytest.raises(ValueError, match=r"face\.pad_fractions"):
        FaceParams(pad_fractions=())


# --- reading bad and unusual files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(manifest) -> np.ndarray:
    return read_image(manifest[manifest.dataset == "jaffe"]["file"].iloc[5])


def test_grayscale_rgba_and_16_bit_are_converted(tmp_path, sample, analyzer):
    gray = cv2.cvtColor(sample, cv2.COLOR_RGB2GRAY)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    rgba = np.dstack([sample, np.full(sample.shape[:2], 40, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    cv2.imwrite(str(tmp_path / "gray16.png"), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "rgb16.png"), sample[:, :, ::-1].astype(np.uint16) * 257)

    from_gray = read_image(tmp_path / "gray.png")
    assert from_gray.shape == sample.shape and np.array_equal(from_gray[:, :, 0], gray)
    assert np.array_equal(from_gray[:, :, 0], from_gray[:, :, 2])
    assert np.array_equal(read_image(tmp_path / "rgba.png"), sample)  # alpha dropped, not composited
    assert np.array_equal(read_image(tmp_path / "gray16.png")[:, :, 1], gray)
    assert np.array_equal(read_image(tmp_path / "rgb16.png"), sample)
    for name in ("gray.png", "rgba.png", "gray16.png", "rgb16.png"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
        assert len(analyzer.analyze(image)) == 1, name


def test_exif_orientation_is_applied(tmp_path, sample):
    wide = np.ascontiguousarray(sample[:200])  # 200 x 256
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(wide).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "phone.jpg")
    assert image.shape == (256, 200, 3)
    expected = np.rot90(wide, k=-1)  # clockwise
    assert np.abs(image.astype(int) - expected.astype(int)).mean() < 3


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (no pixel data): a decompression bomb's first bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_bad_files_raise_image_read_error_naming_the_file(tmp_path, manifest):
    jpeg = Path(manifest[manifest.dataset == "jaffe"]["file"].iloc[0]).read_bytes()
    png = Path(manifest[manifest.dataset == "ckplus48"]["file"].iloc[0]).read_bytes()
    cases = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "notes.jpg": (b"these are my notes, not a photo\n" * 20, "not an image"),
        "random.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not an image|corrupt"),
        "empty.png": (b"", "not an image"),
    }
    for name, (content, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    _png_header_only(tmp_path / "huge.png", 12_000, 10_000)  # over our limit, under Pillow's
    cases["huge.png"] = (b"", "120,000,000 pixels is more than the limit .* face.max_pixels")
    _png_header_only(tmp_path / "bomb.png", 30_000, 20_000)  # over Pillow's decompression-bomb limit too
    cases["bomb.png"] = (b"", "face.max_pixels")
    cases["missing.png"] = (b"", "no such file")
    (tmp_path / "missing.png").unlink(missing_ok=True)
    for name, (_, message) in cases.items():
        with pytest.raises(ImageReadError, match=message) as caught:
            read_image(tmp_path / name)
        assert str(tmp_path / name) in str(caught.value)


def test_max_pixels_is_a_limit(tmp_path, sample):
    Image.fromarray(sample).save(tmp_path / "face.png")
    assert read_image(tmp_path / "face.png", max_pixels=256 * 256).shape == (256, 256, 3)
    with pytest.raises(ImageReadError, match="65,535"):
        read_image(tmp_path / "face.png", max_pixels=256 * 256 - 1)


def test_very_large_photo_is_downscaled_for_detection(tmp_path, sample, analyzer):
    canvas = np.full((6000, 8000, 3), 128, np.uint8)
    canvas[:, 1000:7000] = cv2.resize(sample, (6000, 6000), interpolation=cv2.INTER_LINEAR)
    Image.fromarray(canvas).save(tmp_path / "big.jpg", quality=85)
    del canvas
    image = read_image(tmp_path / "big.jpg")
    assert image.shape == (6000, 8000, 3)
    small = cv2.resize(image, (800, 600), interpolation=cv2.INTER_AREA)
    big_face, small_face = analyzer.analyze(image)[0], analyzer.analyze(small)[0]
    assert big_face.crop.shape == (CROP, CROP, 3)
    # Same face, coordinates in the large image's pixels.
    assert np.allclose(np.array(big_face.bbox) / 10, small_face.bbox, atol=3)
    assert big_face.aus["AU12_r"] == pytest.approx(small_face.aus["AU12_r"], abs=0.3)


# --- many files into one table ---------------------------------------------------------------------


def test_analyze_files_rows_statuses_and_crops(tmp_path, manifest, sample):
    files = list(_pick(manifest, "happy", 2))
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(tmp_path / "wall.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.ascontiguousarray(np.hstack([sample, sample[:, ::-1]]))).save(tmp_path / "two.png")
    paths = [files[0], tmp_path / "wall.png", tmp_path / "broken.jpg", tmp_path / "two.png", files[1]]
    crops = [tmp_path / "crops" / f"{i}.png" for i in range(len(paths))]
    table = analyze_files(paths, PARAMS, crop_paths=crops, workers=1)

    assert list(table["file"]) == [
        str(p) for p in [paths[0], paths[1], paths[2], paths[3], paths[3], paths[4]]
    ]
    assert list(table["status"]) == ["ok", "no_face", "unreadable", "ok", "ok", "ok"]
    assert list(table["face"]) == [0, 0, 0, 0, 1, 0]
    assert list(table["success"]) == [1, 0, 0, 1, 1, 1]
    assert "broken.jpg" in table["reason"].iloc[2] and table["reason"].iloc[0] == ""
    assert table["confidence"].iloc[1] == 0.0 and math.isnan(table["confidence"].iloc[2])
    assert table.loc[1:2, AU_COLUMNS].isna().all().all()
    assert list(table["crop"]) == [str(crops[0]), "", "", str(crops[3]), "", str(crops[4])]
    for index in (0, 3, 4):
        assert read_image(crops[index]).shape == (CROP, CROP, 3)
    assert not crops[1].exists() and not crops[2].exists()
    assert table["confidence"].iloc[3] >= table["confidence"].iloc[4]


def test_analyze_files_same_rows_with_two_workers(manifest):
    files = [*_pick(manifest, "angry", 3), *_pick(manifest, "crying", 3)]
    one = analyze_files(files, PARAMS, workers=1)
    two = analyze_files(files, PARAMS, workers=2)
    pd.testing.assert_frame_equal(one, two)
    assert list(one["file"]) == files


def test_analyze_files_checks_arguments(manifest):
    with pytest.raises(ValueError, match="one per path"):
        analyze_files(["a.png", "b.png"], PARAMS, crop_paths=["a_crop.png"])
    with pytest.raises(ValueError, match="workers"):
        analyze_files(["a.png"], PARAMS, workers=0)
