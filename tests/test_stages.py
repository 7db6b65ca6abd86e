"""Every stage the node builds has one shape, `reset()` plus one call, and `Node.reset()` reaches them.

Built through `open_node` from real specs (the bundled clip with face and hands, a real speech file
beside it; an audio-only node for the idle avatar), so a stage added later is covered without
listing it here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from liverig.core.config import NodeConfig
from liverig.runtime.assets import sample_path
from liverig.runtime.node import Node, open_node, run_loop

CLIP = Path(__file__).resolve().parent / "fixtures" / "speech_librivox_0880.wav"
OLD_NAMES = ("estimate", "step", "retarget")  # the stage methods before the one call


def _stages(node: Node) -> dict[str, object]:
    """Every per-frame stage of `node`, by a readable name."""
    stages = {"perception": node.perception, "motion": node.motion}
    stages |= {f"retarget[{i}] {r.profile.name}": r for i, r in enumerate(node.retargets)}
    stages |= {f"motion filter {type(f).__name__}": f for f in [node.motion.finite, *node.motion.filters]}
    stages |= {f"part {part.name}": part for part in node.parts}
    return stages


def _spy_resets(stages: dict[str, object]) -> list[str]:
    """Wrap each stage's own `reset` so a call is recorded (and still done)."""
    calls: list[str] = []
    for name, stage in stages.items():
        original = stage.reset

        def spy(original=original, name=name) -> None:
            calls.append(name)
            original()

        stage.reset = spy
    return calls


def _open_camera_node(tmp_path) -> Node:
    config = NodeConfig.model_validate(
        {
            "retarget": {"rig": "mixamo"},  # not a Unity humanoid: VMC adds a vrm0 retargeter
            "perception": {"face": {"enabled": True}, "hands": {"enabled": True}},
        }
    )
    return open_node(
        config,
        f"video:{sample_path('carphone.mp4')}",
        ["vmc://127.0.0.1:39999", f"record:{tmp_path / 'o.jsonl'}"],
        log=lambda m: None,
        audio_spec=f"audio:{CLIP}",
    )


def _open_audio_node() -> Node:
    return open_node(NodeConfig(), f"audio:{CLIP}", [], log=lambda m: None)


@pytest.mark.parametrize("opener", ["camera", "audio"])
def test_every_stage_is_reset_plus_one_call_and_node_reset_reaches_all(tmp_path, opener):
    node = _open_camera_node(tmp_path) if opener == "camera" else _open_audio_node()
    stages = _stages(node)
    expected_parts = ["face", "hands", "voice"] if opener == "camera" else ["voice", "alive"]
    assert [part.name for part in node.parts] == expected_parts
    if opener == "camera":
        assert type(node.perception).__name__ == "PoseEstimator" and len(node.retargets) == 2
    for name, stage in stages.items():
        assert callable(stage), name
        assert callable(getattr(stage, "reset", None)), name
    for stage in (node.perception, node.motion, *node.retargets):
        assert not [old for old in OLD_NAMES if hasattr(stage, old)], type(stage).__name__
    calls = _spy_resets(stages)

    # A reset between frames, as a source restart would do it; the node runs on afterwards.
    def reset_on_third(n: Node, seen=[0]) -> None:  # noqa: B006 - a counter for this run only
        seen[0] += 1
        if seen[0] == 3:
            n.reset()

    node.between_frames.append(reset_on_third)
    stats = run_loop(node, max_frames=6)
    assert stats.frames == 6
    missed = sorted(set(stages) - set(calls))
    assert not missed, f"Node.reset() did not reach {missed}"
