"""Opening the node's stages from what the user typed, shared by the start (runtime/node.py
`open_node`) and the live page's controls (runtime/page_control.py), which rebuild a stage while the
node runs. Everything fails as a `StartupError` with one line naming the culprit (and the config key).
"""

from __future__ import annotations

import os
from pathlib import Path

from liverig.bridges.base import Output
from liverig.core.config import NodeConfig
from liverig.core.safe_io import output_refusal
from liverig.runtime.motion import MotionStage
from liverig.runtime.motion_methods import make_motion
from liverig.runtime.recording import OutputRecorder

UNITY_HUMANOID_RIG = "vrm0"  # what VMC outputs send when retarget.rig is no Unity humanoid


class StartupError(Exception):
    """Something the user asked for cannot be opened; the message is one line. `key` names the config
    key it came from, if any (run_node.py then names the config file too)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def check_writable(path: Path, what: str, overwrite: bool = False) -> None:
    """A file output's folder must exist and take files; what is there already must be a regular file
    the user agreed to replace."""
    if path.is_dir():
        raise StartupError(f"{what}: {path} is a directory")
    refusal = output_refusal(path, overwrite)
    if refusal is not None:
        raise StartupError(f"{what}: {refusal}")
    if not path.parent.is_dir():
        raise StartupError(f"{what}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise StartupError(f"{what}: cannot write in {path.parent}")


def open_output_spec(spec: str, config: NodeConfig, fps: float, profile) -> Output:
    """Any --out spec: the bridges' own (vmc, osc, ws, bvh) and the two the runtime adds through the
    bridges' `extra` hook: `record:` (the node's per-frame output file) and `page:` (the live page)."""
    from liverig.bridges.outputs import open_output

    axes = {"handedness": profile.handedness, "up": profile.up.lower(), "forward": profile.forward.lower()}
    stream = {"fps": fps, "units": profile.units, "axes": axes, "rest_rotations": profile.rest_rotations()}

    def page(spec: str) -> Output:
        from liverig.runtime.page import PageServer, parse_page_spec

        return PageServer(parse_page_spec(spec), config, **stream)

    extra = {"record": lambda spec: OutputRecorder(spec.removeprefix("record:")), "page": page}
    return open_output(spec, config.bridges, **stream, extra=extra)


def open_retarget(config: NodeConfig, log):
    """The retargeter for `retarget.rig`; for a user's model file the automatic mapping's report is
    shown. What cannot be opened names the config key."""
    from liverig.runtime.retarget import MODEL_SUFFIXES, Retargeter
    from liverig.runtime.rigs import load_rig

    rig = config.retarget.rig
    try:
        if Path(rig).suffix.lower() not in MODEL_SUFFIXES:
            profile = load_rig(rig)
        else:
            from liverig.runtime.gltf_rig import read_gltf_rig

            profile, report = read_gltf_rig(rig)
            for line in report.lines():
                log(f"liverig: rig {line}")
        return Retargeter(profile, config.retarget)
    except (ValueError, OSError, RuntimeError) as error:
        raise StartupError(str(error).splitlines()[0], "retarget.rig") from None


def rig_for(spec: str, retargets: list, config: NodeConfig, log) -> int:
    """Which of `retargets` the output `spec` takes. VMC carries a Unity humanoid only, so when
    retarget.rig is another kind of rig a vrm0 retargeter is added for it (once)."""
    from liverig.bridges.outputs import rig_requirement
    from liverig.runtime.retarget import Retargeter, is_unity_humanoid
    from liverig.runtime.rigs import load_rig

    profile = retargets[0].profile
    # VMC receivers read VRM 0 preset + ARKit blendshape names: a rig that renames them gets vrm0 too.
    # The page drives a VRM avatar by HumanBodyBones and VRM names: it takes the Unity humanoid like VMC.
    renamed = bool(profile.expressions) or profile.expressions_only
    needs = "unity_humanoid" if spec.lower().startswith("page:") else rig_requirement(spec)
    if needs != "unity_humanoid" or (is_unity_humanoid(profile) and not renamed):
        return 0
    if len(retargets) == 1:
        retargets.append(Retargeter(load_rig(UNITY_HUMANOID_RIG), config.retarget))
        log(
            f"liverig: {spec} sends the {UNITY_HUMANOID_RIG} rig (HumanBodyBones, Unity axes: what VMC "
            f"receivers expect); retarget.rig '{profile.name}' drives the other outputs"
        )
    return 1


def open_retargets(config: NodeConfig, output_specs: list[str], log) -> tuple[list, list[int]]:
    """The retargeters for `retarget.rig` and which of them each output (by its spec) takes, by the
    rule of `rig_for`: what `open_node` builds, for rebuilding them while the node runs (the page's
    live rig control, runtime/page_control.py). Raises StartupError naming retarget.rig."""
    retargets = [open_retarget(config, log)]
    return retargets, [rig_for(spec, retargets, config, log) for spec in output_specs]


def open_motion(config: NodeConfig) -> MotionStage:
    """The motion stage; what cannot be opened names the config key it came from."""
    from liverig.models.backends import BackendUnavailable
    from liverig.runtime.body import BodyProfileError

    try:
        return make_motion(config.motion, config.perception)
    except BodyProfileError as error:
        raise StartupError(str(error), "motion.body.profile") from None
    except BackendUnavailable as error:
        raise StartupError(str(error).splitlines()[0], "motion.backend") from None
    except Exception as error:  # weights missing, unreadable or no model (onnxruntime's own errors)
        raise StartupError(str(error).splitlines()[0] or type(error).__name__, "motion.weights") from None
