"""Do 100 ms blinks come out as blinks when the scheduler runs the face at a reduced rate?

    python -m liverig.runtime.blink_bench [--blinks 200] [--body-ms 22] [--face-ms 15] [--seed 0]

Issue 16 wants every 100 ms blink sent as a blink (peak >= 0.8), but under the budget scheduler
the face may run only at its minimum rate (10 Hz): a blink is then seen in one sample or not at all.
This plays blinks of 100 ms at random phases through the face part's own code path (FacePart's
`__call__` / `hold`, its ExpressionFilter and blink latches) under the real Scheduler at 30 fps, and
reads the `Blink` value back from the VMC datagrams the node would send (retargeted to vrm0,
encoded by bridges/vmc.py, decoded by python-osc). Only the face landmarker's inference is
replaced, by its blendshape scores along a blink's shape (`blink_score`: the raw score rises from
the open eye's level to `peak` and back, a sin^2 bump, as tests/test_face.py's frames of the
carphone clip's blinks do). The time is simulated (a clock the body and the face advance by their
costs), so the result does not depend on this machine's load.

Reported: how many blinks peak >= 0.8 at the VMC output, the face's update rate, and the frames
with Blink >= 0.8 outside any blink (false blinks).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
from pythonosc.osc_packet import OscPacket

from liverig.bridges.vmc import encode_vmc
from liverig.core import skeleton
from liverig.core.config import FaceConfig
from liverig.core.types import Frame, Observation, Pose, Timing
from liverig.runtime.face import FacePart
from liverig.runtime.retarget import Retargeter
from liverig.runtime.rigs import load_rig
from liverig.runtime.scheduler import Scheduler

FPS = 30.0
OPEN_SCORE = 0.07  # the raw blink score of an open eye (carphone clip: 0.05-0.15)


def blink_score(t: float, start: float, duration: float, peak: float) -> float:
    """The raw eyeBlink score at `t` for a blink from `start` lasting `duration` seconds."""
    phase = (t - start) / duration
    if not 0.0 <= phase <= 1.0:
        return OPEN_SCORE
    return OPEN_SCORE + (peak - OPEN_SCORE) * float(np.sin(np.pi * phase) ** 2)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Category:
    category_name: str
    score: float


@dataclass
class _Result:
    face_blendshapes: list[list[_Category]]
    facial_transformation_matrixes: list


@dataclass
class BlinkTrial:
    blinks: int
    sent: int  # blinks whose Blink value at the VMC output peaked >= 0.8
    false_frames: int  # frames with Blink >= 0.8 outside every blink (and its 0.3 s after)
    face_hz: float
    frames: int

    def line(self) -> str:
        return (
            f"{self.sent} of {self.blinks} blinks sent as blinks (peak >= 0.8 at the VMC output); "
            f"face at {self.face_hz:.1f} Hz; {self.false_frames} false-blink frames of {self.frames}"
        )


def _vmc_blink(datagrams: list[bytes]) -> float:
    for datagram in datagrams:
        for timed in OscPacket(datagram).messages:
            message = timed.message
            if message.address == "/VMC/Ext/Blend/Val" and message.params[0] == "Blink":
                return float(message.params[1])
    return 0.0


def blink_trial(
    blinks: int = 100,
    body_ms: float = 22.0,
    face_ms: float = 15.0,
    duration_s: float = 0.1,
    peak: float = 0.55,
    seed: int = 0,
    config: FaceConfig | None = None,
) -> BlinkTrial:
    """`blinks` blinks of `duration_s`, 1.5-3 s apart at random phases against the 30 fps frames,
    through the face part under the scheduler (body and face costs per frame in ms: with the
    defaults the face does not fit the 33 ms frame and runs at its minimum rate)."""
    rng = np.random.default_rng(seed)
    starts = 1.0 + np.cumsum(rng.uniform(1.5, 3.0, size=blinks))
    end = float(starts[-1]) + 1.0
    clock = _Clock()
    part = FacePart(config or FaceConfig())
    scores_at: dict[str, float] = {}

    def detect(frame: Frame, crop) -> _Result:
        clock.now += face_ms / 1000.0
        names = ("eyeBlinkLeft", "eyeBlinkRight", "jawOpen")
        return _Result([[_Category(name, scores_at.get(name, 0.0)) for name in names]], [])

    part._detect = detect  # the landmarker's inference only; everything after it is the part's own
    scheduler = Scheduler([part], target_fps=FPS, clock=clock)
    retargeter = Retargeter(load_rig("vrm0"))
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    values, times, runs = [], [], 0
    try:
        for index in range(int(end * FPS)):
            t = index / FPS
            clock.now = max(clock.now, t)  # the frame arrives; a late loop takes it late
            timing = Timing(clock.now)
            clock.now += body_ms / 1000.0
            nearest = float(starts[np.argmin(np.abs(starts - t))])
            raw = blink_score(t, nearest, duration_s, peak)
            scores_at.update(eyeBlinkLeft=raw, eyeBlinkRight=raw, jawOpen=0.1)
            frame = Frame(index, t, timing, image)
            observation = Observation.absent(index, t, timing)
            pose = Pose(index, t, timing, True, skeleton.rest_pose(), np.ones(skeleton.NUM_JOINTS))
            scheduler.run(frame, observation, pose)
            runs += scheduler.last_choice.get(part.name) is not None
            rig = retargeter(pose)
            values.append(_vmc_blink(encode_vmc(rig, t)))
            times.append(t)
            scheduler.frame_done()
    finally:
        part.close()
    values_a, times_a = np.array(values), np.array(times)
    sent, inside = 0, np.zeros(len(times_a), dtype=bool)
    for start in starts:
        window = (times_a >= start) & (times_a < start + duration_s + 0.3)
        inside |= window
        sent += bool(np.any(values_a[window] >= 0.8))
    false_frames = int(np.sum(values_a[~inside] >= 0.8))
    return BlinkTrial(blinks, sent, false_frames, runs / end, len(times_a))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.runtime.blink_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--blinks", type=int, default=200)
    parser.add_argument("--body-ms", type=float, default=22.0, help="the body's cost per frame")
    parser.add_argument("--face-ms", type=float, default=15.0, help="one face inference's cost")
    parser.add_argument("--peak", type=float, default=0.55, help="the raw blink score at mid-blink")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for label, body, face in (
        ("face fits every frame", 10.0, args.face_ms),
        ("face at the scheduler's reduced rate", args.body_ms, args.face_ms),
    ):
        trial = blink_trial(args.blinks, body, face, peak=args.peak, seed=args.seed)
        print(f"{label} (body {body:g} ms, face {face:g} ms): {trial.line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
