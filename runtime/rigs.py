"""Finding a rig: a profile by name (configs/rigs/NAME.yaml), a profile .yaml path, or a model
file (.vrm/.glb/.gltf) whose skeleton is read into a profile. Above both readers (runtime/retarget.py
for profiles, runtime/gltf_rig.py for model files) so that neither imports the other."""

from __future__ import annotations

from pathlib import Path

from liverig.runtime.gltf_rig import read_gltf_rig
from liverig.runtime.retarget import MODEL_SUFFIXES, RIGS_DIR, RigError, RigProfile, load_profile_file


def available_rigs() -> list[str]:
    return sorted(path.stem for path in RIGS_DIR.glob("*.yaml"))


def load_rig(name_or_path: str | Path) -> RigProfile:
    """A profile by name (configs/rigs/NAME.yaml), a profile .yaml path, or a .vrm/.glb/.gltf model."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in MODEL_SUFFIXES:
        return read_gltf_rig(path)[0]
    if path.suffix.lower() in (".yaml", ".yml") or "/" in text or "\\" in text:
        return load_profile_file(path)
    candidate = RIGS_DIR / f"{text}.yaml"
    if not text or not candidate.is_file():
        raise RigError(
            f"unknown rig '{text}': available rigs are {', '.join(available_rigs())}, "
            f"or give a path to a {'/'.join(MODEL_SUFFIXES)} model"
        )
    return load_profile_file(candidate)
