"""Live controls from the browser page (runtime/page.py): validated like the config, applied between frames.

A control message names config keys and new values (`{"motion.method": "one_euro"}`), or an action
(an output on/off, a recording start/stop, save the settings). A change is checked exactly like a
config file is (the pydantic models of core/config.py) and anything that has to be built (a new
motion stage, a recording file) is built off the loop; only then is a small `apply(node)` queued,
which the node's loop thread runs between two frames (`Node.between_frames`). A bad value raises
`ControlError` with one line naming the key, and nothing changes.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from liverig.core.config import NodeConfig

# Keys the page may change while the node runs: the whole motion section (its stage is rebuilt) and
# the retargeter's per-frame switches. Other keys need a restart (the rig, the source, the outputs'
# own settings) and are refused with a message saying so.
LIVE_PREFIXES = ("motion.",)
LIVE_RETARGET_KEYS = ("retarget.mirror", "retarget.move_root")
RECORDING_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}\.(bvh|jsonl)$")

Apply = Callable[[Any], None]  # runs in the node's loop thread, between frames, with the Node


class ControlError(ValueError):
    """A control the node refuses; the message is one line for the page."""


def changed_config(config: NodeConfig, changes: Any) -> NodeConfig:
    """`config` with `changes` ({"dotted.key": value}) applied, validated as a config file is."""
    if not isinstance(changes, dict) or not changes:
        raise ControlError("'set' must be a non-empty map of config keys to values")
    data = config.model_dump(mode="python")
    for key, value in changes.items():
        if not isinstance(key, str) or not (key.startswith(LIVE_PREFIXES) or key in LIVE_RETARGET_KEYS):
            raise ControlError(
                f"key '{key}' cannot be changed while the node runs (live: motion.*, "
                f"{', '.join(LIVE_RETARGET_KEYS)}); edit the config file and restart"
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


def settings_plan(current: NodeConfig, changes: Any) -> tuple[NodeConfig, Apply]:
    """Validate `changes` and build what they need (off the loop thread: loading a motion model takes
    a while); returns the new config and the `apply` for the loop thread."""
    from liverig.runtime.node import StartupError, _open_motion

    config = changed_config(current, changes)
    motion = None
    if config.motion != current.motion:
        try:
            motion = _open_motion(config)
        except StartupError as error:
            raise ControlError(f"key '{error.key}': {error}" if error.key else str(error)) from None

    def apply(node) -> None:
        node.config = config
        if motion is not None:
            node.motion = motion
        for retarget in node.retargets:
            retarget.config = config.retarget

    return config, apply


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
    from liverig.runtime.node import StartupError, _check_writable, _open_output

    if not isinstance(name, str) or not RECORDING_NAME.match(name):
        raise ControlError(f"recording name {name!r}: a plain file name ending .bvh or .jsonl")
    path = folder / name
    if path.exists():
        raise ControlError(f"recording {path} exists already; choose another name")
    spec = f"bvh:{path}" if name.endswith(".bvh") else f"record:{path}"
    try:
        _check_writable(path.resolve(), spec)
        fps = getattr(node.source, "fps", None) or node.config.source.fps
        output = _open_output(spec, node.config, fps, node.retargets[0].profile)
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


def save_config(config: NodeConfig, path: Path) -> None:
    """Write `config` as YAML (loadable with --config); write-then-rename, so a failed save keeps the old."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(
            "# liverig settings saved from the page; use with: run_node.py --config "
            f"{path.name}\n" + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
        )
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ControlError(f"cannot save the settings to {path}: {error.strerror or error}") from None


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
