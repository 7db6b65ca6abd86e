"""100 ms blinks when the scheduler runs the face at a reduced rate (runtime/blink_bench.py): the face
part's own code path (latches, presets, hold), the real Scheduler on a simulated clock, the Blink
value read back from the VMC datagrams. Also the two pieces that make more of them come out: the
scheduler runs an `urgent` part over budget, and a sparse sample latches from the `link` level."""

from __future__ import annotations

import numpy as np

from liverig.runtime.blink_bench import blink_trial
from liverig.runtime.expressions import BlinkSettings, ExpressionFilter
from liverig.runtime.scheduler import Scheduler
from tests.test_scheduler import Clock, TimedPart, _frames


def test_blinks_at_full_rate_all_come_out_and_at_the_reduced_rate_most_do():
    """Every frame: every blink. At the scheduler's minimum rate (10 Hz) a 100 ms blink can fall
    between two samples, which no logic after the model can undo (docs/face.md has the counts):
    the closing eye's urgent re-run and the sparse latch bring most of them out. Never a false blink."""
    full = blink_trial(blinks=30, body_ms=10.0, face_ms=15.0, seed=3)
    assert full.face_hz > 29.0 and full.sent == full.blinks and full.false_frames == 0
    reduced = blink_trial(blinks=60, body_ms=22.0, face_ms=15.0, seed=3)
    assert reduced.face_hz < 12.5  # the face really was held back to about its minimum rate
    assert reduced.sent >= 0.5 * reduced.blinks and reduced.false_frames == 0


class UrgentPart(TimedPart):
    urgent = False


def test_an_urgent_part_runs_on_the_next_frame_over_budget():
    clock = Clock()
    part = UrgentPart("face", clock, costs=(15.0,), min_rate_hz=10.0)
    scheduler = Scheduler([part], target_fps=30.0, clock=clock)
    _frames(scheduler, clock, 30, body_ms=22.0)  # does not fit: every third frame (10 Hz)
    assert len(part.ran) <= 12
    part.urgent = True
    before = len(part.ran)
    _frames(scheduler, clock, 5, body_ms=22.0)
    assert len(part.ran) - before == 5


def _both(raw: float) -> dict[str, float]:
    return {"eyeBlinkLeft": raw, "eyeBlinkRight": raw}


def test_a_sparse_sample_latches_from_the_link_level_a_frequent_one_does_not():
    settings = BlinkSettings(on=0.4, link=0.3)
    every_frame = ExpressionFilter(settings)
    every_frame(_both(0.08), 0.0)
    assert every_frame(_both(0.33), 1 / 30)["Blink"] < 0.8  # seen every frame: a half-closed eye
    sparse = ExpressionFilter(settings)
    sparse(_both(0.08), 0.0)
    assert sparse(_both(0.33), 0.1)["Blink"] == 1.0  # 100 ms since the last look: part of a blink
    assert sparse(_both(0.08), 0.2)["Blink"] < 0.1  # and open again


def test_an_eye_on_its_way_shut_is_flagged_closing_and_a_steady_one_is_not():
    expressions = ExpressionFilter(BlinkSettings())
    expressions(_both(0.08), 0.0)
    expressions(_both(0.22), 1 / 30)
    assert expressions.closing
    expressions(_both(0.22), 2 / 30)  # a steady, slightly lowered lid: no re-run asked for
    assert not expressions.closing
    expressions(_both(0.6), 3 / 30)
    assert expressions.just_shut
    assert np.isclose(expressions(_both(0.6), 4 / 30)["Blink"], 1.0) and not expressions.just_shut
