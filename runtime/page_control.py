"""Live controls from the browser page (runtime/page.py): validated like the config, applied between frames.

A control message names config keys and new values (`{"motion.method": "one_euro"}`), or an action
(an output on/off, a recording start/stop, save the settings). A change is checked exactly like a
config file is (the pydantic models of core/config.py) and anything that has to be built (a new
motion stage, the retargeters of a new rig, the face or hands part with its MediaPipe model, a
recording file) is built off the loop; only then is a small `apply(node)` queued, which the node's
loop thread runs between two frames (`Node.between_frames`). What a change drops (a part switched
off) is closed off the loop afterwards. A bad value raises `ControlError` with one line naming the
key, and nothing changes.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from liverig.core.config import ConfigError, NodeConfig, load_config
from liverig.core.safe_io import output_refusal
from liverig.runtime.openers import (
    StartupError,
    check_writable,
    open_motion,
    open_output_spec,
    open_retargets,
)

# Keys the page may change while the node runs: the whole motion section (its stage is rebuilt), the
# rig (its retargeters are rebuilt), the retargeter's per-frame switches and the face and hands parts
# on/off (opened or closed). Other keys need a restart (the source, the outputs' own settings) and
# are refused with a message saying so.
LIVE_PREFIXES = ("motion.",)
LIVE_RETARGET_KEYS = ("retarget.mirror", "retarget.move_root", "retarget.rig")
LIVE_PART_KEYS = {"perception.face.enabled": "face", "perception.hands.enabled": "hands"}
LIVE_KEYS = (*LIVE_RETARGET_KEYS, *LIVE_PART_KEYS)
RECORDING_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.(bvh|jsonl)$")
SAVE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.ya?ml$")
# The parts' dependency order (runtime/node.py opens them so): the voice fuses with the mouth the face
# wrote. A part opened from the page goes in its place; unknown parts (the page's tap) stay last.
PART_ORDER = ("face", "hands", "voice", "alive")
FILE_OUTPUTS = ("bvh:", "record:")  # a file has one skeleton: it keeps the rig it was opened with

Apply = Callable[[Any], None]  # runs in the node's loop thread, between frames, with the Node


class ControlError(ValueError):
    """A control the node refuses; the message is one line for the page."""


def changed_config(config: NodeConfig, changes: Any) -> NodeConfig:
    """`config` with `changes` ({"dotted.key": value}) applied, validated as a config file is."""
    if not isinstance(changes, dict) or not changes:
        raise ControlError("'set' must be a non-empty map of config keys to values")
    data = config.model_dump(mode="python")
    for key, value in changes.items():
        if not isinstance(key, str) or not (key.startswith(LIVE_PREFIXES) or key in LIVE_KEYS):
            raise ControlError(
                f"key '{str(key)[:60]}' cannot be changed while the node runs (live: motion.*, "
                f"{', '.join(LIVE_KEYS)}); edit the config file and restart"
            )
        section = data
        *path, leaf = key.split(".")
        for part in path:
            section = section.get(part) if isinstance(section, dict) else None
        if not isinstance(section, dict) or leaf not in section:
            raise ControlError(f"key '{key}': no such config key")
        section[leaf] = value
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ControlError(f"key '{where}': {first['msg']}") from None


@dataclass
class Plan:
    """A validated change, built off the loop: `apply(node)` runs between frames; then `finish()` closes
    what it dropped, or, if it never ran, `discard()` closes what was built for it."""

    config: NodeConfig
    apply: Apply
    notes: list[str] = field(default_factory=list)  # what the user should know (which rig VMC gets)
    opened: list = field(default_factory=list)  # parts built for the change
    dropped: list = field(default_factory=list)  # parts the change took out (filled by apply)

    def finish(self) -> None:
        _close_all(self.dropped)

    def discard(self) -> None:
        _close_all(self.opened)


def _close_all(items: list) -> None:
    for item in items:
        try:
            item.close()
        except Exception as error:  # noqa: BLE001 - closing must not hide the others' closing
            print(f"liverig: page: closing {getattr(item, 'name', item)}: {error}", file=sys.stderr)


def settings_plan(current: NodeConfig, changes: Any, node=None) -> Plan:
    """Validate `changes` and build what they need (off the loop thread: loading a motion model or a
    MediaPipe part takes a while); returns the plan whose `apply` the loop thread runs."""
    config = changed_config(current, changes)
    plan = Plan(config, lambda node: None)
    motion = None
    if config.motion != current.motion:
        try:
            motion = open_motion(config)
        except StartupError as error:
            raise ControlError(f"key '{error.key}': {error}" if error.key else str(error)) from None
    rig = None
    if config.retarget.rig != current.retarget.rig:
        rig = _rig_plan(config, node, plan.notes)
    toggles = {
        name: config.perception.model_dump()[name]["enabled"]
        for key, name in LIVE_PART_KEYS.items()
        if key in changes
    }
    plan.opened = _open_parts_for(config, toggles, node)
    switched = {name for name, on in toggles.items() if not on}

    def apply(node) -> None:
        node.config = config
        if motion is not None:
            node.motion = motion
        if rig is not None:
            rig(node)
        for retarget in node.retargets:
            retarget.config = config.retarget
        if plan.opened or switched:
            _switch_parts(node, plan.opened, switched, plan.dropped)

    plan.apply = apply
    return plan


def _spec_of(output) -> str:
    """What `--out` an output came from, as far as the rig rule needs it: its name starts with its
    scheme (vmc://..., ws://..., bvh:..., record:...); the page (which `attach`es) takes the Unity
    humanoid like VMC."""
    inner = output.output if isinstance(output, Paused) else output
    return "page:" if hasattr(inner, "attach") else str(getattr(inner, "name", ""))


def _rig_plan(config: NodeConfig, node, notes: list[str]) -> Callable[[Any], None]:
    """Build the retargeters of the new `retarget.rig` (the node's rule: an output that needs a Unity
    humanoid, VMC and the page, gets vrm0 when the rig is none); returns the step that puts them in.
    File outputs keep the retargeter they were opened with: a BVH file has one skeleton."""
    from liverig.bridges.outputs import rig_requirement

    if node is None:
        raise ControlError("the node is not running")
    try:
        retargets, (unity,) = open_retargets(config, ["page:"], notes.append)
    except StartupError as error:
        raise ControlError(f"key 'retarget.rig': {error}") from None

    def apply(node) -> None:
        new = list(retargets)
        rigs = []
        for output, which in zip(node.outputs, node.output_rigs, strict=True):
            spec = _spec_of(output)
            if spec.startswith(FILE_OUTPUTS):
                old = node.retargets[which]
                if all(old is not kept for kept in new):
                    new.append(old)
                rigs.append(next(i for i, kept in enumerate(new) if kept is old))
                continue
            needs = spec == "page:" or rig_requirement(spec) == "unity_humanoid"
            rigs.append(unity if needs else 0)
            _describe_stream(output, new[rigs[-1]].profile)
        node.retargets[:] = new
        node.output_rigs[:] = rigs

    return apply


def _describe_stream(output, profile) -> None:
    """An output that describes its stream in a hello (the WebSocket output, the page) gets the new
    rig's units, axes and rest rotations; its next frame, of a new rig, sends the new hello."""
    inner = output.output if isinstance(output, Paused) else output
    if hasattr(inner, "rest_rotations") and hasattr(inner, "axes") and hasattr(inner, "units"):
        inner.units = profile.units
        inner.axes = {
            "handedness": profile.handedness,
            "up": profile.up.lower(),
            "forward": profile.forward.lower(),
        }
        inner.rest_rotations = profile.rest_rotations()


def _open_parts_for(config: NodeConfig, toggles: dict[str, bool], node) -> list:
    """Open the parts switched on (face, hands) that the node does not run yet."""
    wanted = [name for name, on in toggles.items() if on]
    if not wanted:
        return []
    if node is None:
        raise ControlError("the node is not running")
    running = {part.name for part in node.parts}
    wanted = [name for name in wanted if name not in running]
    if wanted and not node.sees_images:
        key = next(key for key, name in LIVE_PART_KEYS.items() if name == wanted[0])
        raise ControlError(f"key '{key}': this source has no images (a landmark replay or audio)")
    opened: list = []
    try:
        for name in wanted:
            if name == "face":
                from liverig.runtime.face import FacePart

                opened.append(FacePart(config.perception.face))
            else:
                from liverig.runtime.hands import HandsPart

                opened.append(HandsPart(config.perception.hands))
    except Exception as error:  # noqa: BLE001 - a model that will not open: one line, nothing changes
        _close_all(opened)
        key = f"perception.{name}"
        raise ControlError(f"key '{key}': {str(error).splitlines()[0] if str(error) else error!r}") from None
    return opened


def _switch_parts(node, opened: list, switched_off: set[str], dropped: list) -> None:
    """In the loop thread: take out the parts switched off (into `dropped`, closed later off the loop)
    and put the opened ones in their dependency order; the scheduler shares the node's list of parts.
    A node that ran no scheduler (no parts at the start) gets one when it should have had one."""
    for part in [part for part in node.parts if part.name in switched_off]:
        node.parts.remove(part)
        dropped.append(part)

    def rank(part) -> int:
        return PART_ORDER.index(part.name) if part.name in PART_ORDER else len(PART_ORDER)

    for part in opened:
        at = next((i for i, other in enumerate(node.parts) if rank(other) > rank(part)), len(node.parts))
        node.parts.insert(at, part)
    if opened and node.scheduler is None and node.config.perception.schedule:
        from liverig.runtime.scheduler import Scheduler
        from liverig.runtime.sources import WebcamSource

        if isinstance(node.source, WebcamSource) or node.config.source.realtime:
            fps = getattr(node.source, "fps", None) or node.config.source.fps
            node.scheduler = Scheduler(node.parts, target_fps=fps, budget_ms=node.config.perception.budget_ms)


class Paused:
    """An output switched off from the page: it keeps its sockets and clients, and is sent nothing."""

    def __init__(self, output) -> None:
        self.output = output
        self.name = getattr(output, "name", type(output).__name__)

    def send(self, pose, rig) -> None:
        pass

    def close(self) -> None:
        self.output.close()


def output_switch(index: Any, enabled: Any, page) -> Apply:
    """Turn output `index` (its position in --out) on or off; the page itself cannot be switched off."""
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ControlError(f"output index must be a whole number >= 0, got {index!r}")
    if not isinstance(enabled, bool):
        raise ControlError(f"'enabled' must be true or false, got {enabled!r}")

    def apply(node) -> None:
        if index >= len(node.outputs):
            raise ControlError(f"no output {index} (the node has {len(node.outputs)})")
        output = node.outputs[index]
        if output is page:
            raise ControlError("the page cannot switch itself off")
        if enabled and isinstance(output, Paused):
            node.outputs[index] = output.output
        elif not enabled and not isinstance(output, Paused):
            node.outputs[index] = Paused(output)

    return apply


def recording_start(name: Any, folder: Path, node) -> tuple[Any, Apply]:
    """Open a recording named `name` (a plain file name ending .bvh or .jsonl) in `folder`; returns the
    opened output and the `apply` that adds it to the node's outputs."""
    if not isinstance(name, str) or not RECORDING_NAME.match(name):
        raise ControlError(f"recording name {name!r}: a plain file name ending .bvh or .jsonl")
    path = folder / name
    if path.exists():
        raise ControlError(f"recording {path} exists already; choose another name")
    spec = f"bvh:{path}" if name.endswith(".bvh") else f"record:{path}"
    try:
        check_writable(path.resolve(), spec)
        fps = getattr(node.source, "fps", None) or node.config.source.fps
        output = open_output_spec(spec, node.config, fps, node.retargets[0].profile)
    except (StartupError, OSError, ValueError) as error:
        raise ControlError(f"recording {path}: {str(error).splitlines()[0]}") from None

    def apply(node) -> None:
        node.outputs.append(output)
        node.output_rigs.append(0)

    return output, apply


def recording_stop(output) -> Apply:
    """Take the recording `output` out of the node's outputs (the caller closes it afterwards)."""

    def apply(node) -> None:
        for i, candidate in enumerate(node.outputs):
            if candidate is output or (isinstance(candidate, Paused) and candidate.output is output):
                del node.outputs[i]
                del node.output_rigs[i]
                return

    return apply


def save_target(save_to: Path, name: Any, overwrite: Any) -> Path:
    """Where a save goes: `page.save_to`, or a plain file name (.yaml/.yml) in its folder. Regular files
    only; an existing one only with `overwrite` true in the message."""
    if not isinstance(overwrite, bool):
        raise ControlError(f"'overwrite' must be true or false, got {overwrite!r}"[:120])
    if name is None:
        path = save_to
    elif not isinstance(name, str) or not SAVE_NAME.match(name):
        raise ControlError(f"settings file name {str(name)[:60]!r}: a plain file name ending .yaml or .yml")
    else:
        path = save_to.parent / name
    refusal = output_refusal(path, overwrite)
    if refusal is not None:
        raise ControlError(
            refusal.replace("pass --overwrite to replace it", "tick 'overwrite' to replace it")
        )
    if not path.parent.is_dir():
        raise ControlError(f"cannot save the settings: directory {path.parent} does not exist")
    return path


def save_config(config: NodeConfig, path: Path, overwrite: bool = True) -> None:
    """Write `config` as YAML (loadable with --config) and read it back as a config file is read
    (safe reader, the same validation) before it takes the name: write-then-rename, so a failed save
    keeps the old file. `overwrite` false: an existing file is never replaced (nor a special file)."""
    refusal = output_refusal(path, overwrite)
    if refusal is not None:
        raise ControlError(refusal)
    partial = path.with_name(path.name + ".partial")
    text = (
        "# liverig settings saved from the page; use with: run_node.py --config "
        f"{path.name}\n" + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    )
    try:  # a new file of our own: never through a link, never onto a FIFO left at that name
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        raise ControlError(f"cannot save: {partial} is in the way (another save, or a left-over)") from None
    except OSError as error:
        raise ControlError(f"cannot save the settings to {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        if load_config(partial) != config:
            raise ControlError(f"the settings written to {partial} do not read back the same; not saved")
        if overwrite:
            partial.replace(path)
        else:
            os.link(partial, path)  # fails if the name was taken since the check: nothing replaced
    except FileExistsError:
        raise ControlError(f"{path} already exists; tick 'overwrite' to replace it") from None
    except (OSError, ConfigError) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise ControlError(f"cannot save the settings to {path}: {reason}") from None
    finally:
        partial.unlink(missing_ok=True)  # ours (made above); gone already after a replace


def run_applies(node, applies: list[tuple[Apply, Callable[[BaseException | None], None]]]) -> None:
    """Run queued `apply`s in the loop thread; each one's outcome goes to its `done` callback."""
    for apply, done in applies:
        try:
            apply(node)
        except Exception as error:  # noqa: BLE001 - reported to the page, the loop goes on
            done(error)
            continue
        try:
            done(None)
        except Exception as error:  # noqa: BLE001
            print(f"liverig: page: {error}", file=sys.stderr)
