"""The evaluator scores what the node runs (issue 15): its ST-CNN rows come from
`models/evaluation/methods.py` `node_motion`, which must give, frame for frame, the joints a replay
through `run_node.py` records."""

from __future__ import annotations

import numpy as np

from liverig.core.config import load_config
from liverig.core.fetch import PROJECT_ROOT
from liverig.core.skeleton import NUM_JOINTS
from liverig.models.backends import load_model
from liverig.models.evaluation.methods import node_motion
from liverig.runtime.motion import canonical_observation
from liverig.runtime.recording import read_landmark_recording, read_output_recording
from tests.node_support import ROOT, run_node

REPLAY = ROOT / "tests" / "fixtures" / "roll_mixup.landmarks.jsonl"  # real detector output, a mix-up


def test_the_evaluators_stcnn_equals_a_replay_through_the_node(tmp_path):
    out = tmp_path / "out.jsonl"
    config = tmp_path / "c.yaml"
    config.write_text("source: {realtime: false}\n")
    result = run_node("--source", f"replay:{REPLAY}", "--config", config, "--out", f"record:{out}")
    assert result.returncode == 0, result.stderr
    recorded = read_output_recording(out)[1]

    node = load_config()
    observations = read_landmark_recording(REPLAY)[1]
    present = np.array([o.present for o in observations])
    count = len(observations)
    seq = {
        "world": np.zeros((count, NUM_JOINTS, 3)),
        "image": np.zeros((count, NUM_JOINTS, 2)),
        "visibility": np.zeros((count, NUM_JOINTS)),
        "observed_root": np.zeros((count, 3)),
        "present": present,
        "time_s": np.array([o.time_s for o in observations]),
        "camera": {"image_size": observations[0].image_size},
    }
    for t, o in enumerate(observations):
        if o.present:
            joints, confidence, image, root = canonical_observation(o, node.perception.horizontal_fov_deg)
            seq["world"][t], seq["visibility"][t], seq["image"][t], seq["observed_root"][t] = (
                joints,
                confidence,
                image,
                root,
            )
    model = load_model("onnxruntime", PROJECT_ROOT / node.motion.weights)
    evaluated = node_motion(model, seq)

    assert len(recorded) == count and present.sum() > 50
    for t in np.flatnonzero(present):
        assert recorded[t]["present"]
        np.testing.assert_allclose(evaluated[t], recorded[t]["joints"], atol=2e-6)
