"""The budget scheduler: the node holds its frame rate by deciding, frame by frame, which parts run.

The body (perception + motion) runs every frame; it is what everything else hangs on. The parts
(face, hands, ...) each cost a few to tens of milliseconds, and on a small CPU the body plus every
part does not fit in a 33 ms frame. So after the body, the scheduler looks at what is left of the
frame's budget and runs the parts that fit, the budget going to the most urgent first (they then
run in the node's order, which is their dependency order: the voice after the face); a part that
does not run this frame is told to `hold` (it writes its last values, so the avatar keeps its face
and fingers).

Urgency of a part = how long since it last ran, in units of its own wanted period, weighted up by how
fast its output has been moving lately (`activity`: a face that talks or blinks, hands that wave).
Guarantees and limits, per part:
    min_rate_hz   it runs at least this often, budget or not (a face at 5 Hz is still a face); on a
                  frame with no room, only one part runs over budget for its minimum (the most
                  urgent; the others a frame later): two at once make that frame twice as late, and
                  with the detectors beside the body's, they and the body share the one free core
    max_rate_hz   it never runs more often (default: every frame)
    urgent        when True, it runs on the next frame, budget or not (the face while the eyes
                  close: a 100 ms blink is otherwise missed at a reduced rate; docs/face.md)
Detail: a part may offer cheaper levels (`details`, e.g. a smaller input image) and `set_detail(i)`;
when its full cost does not fit but a cheaper level's does, that level runs; when there is room
again it goes back up. Costs are learned per part and level (running averages of measured times).

The budget is the frame period (1000 / target fps) minus a reserve for what runs after the parts
(retarget, bridges: measured), times `1 - margin` so that jitter does not push a frame late. Time
already spent on this frame counts from when the loop took it (the "wait" mark).

With `perception.parallel` the node calls `prepare(frame)` before the body's perception: the plan
is made then, against the body's predicted time, and the planned parts that can `submit` start their
detectors beside the body (runtime/parts.py); `run` follows that plan. Their learned cost is then the
time they take on the node's thread (the wait for a result that is usually in, and applying it).

Generic over parts: a part needs only `name`, `__call__`, and optionally `hold`, `cost_ms`,
`min_rate_hz`, `max_rate_hz`, `activity`, `urgent`, `details` / `set_detail`. Parts without `hold` are run
every frame (the scheduler cannot keep their output otherwise).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from liverig.core.types import Frame, Observation, Pose
from liverig.runtime.parts import Part

DEFAULT_COST_MS = 10.0
# The min-rate guarantee is kept as a credit (runs owed, earned at min_rate_hz per second of frames)
# rather than a deadline from the last run: a deadline rounds up to the next frame every time, so on
# a slow, loaded machine (18 fps) a 10 Hz minimum came out near 6 Hz. Capped so a part that was not
# due for a while does not then run on several frames in a row.
MAX_CREDIT = 1.5
UNTRIED_LEVEL_FACTOR = 0.8  # an untried, lower detail level is assumed this much cheaper per step


@dataclass
class _PartState:
    last_run: float | None = None  # perf_counter seconds
    cost_ms: dict[int, float] = field(default_factory=dict)  # per detail level, running average
    detail: int = 0
    credit: float = 0.0  # runs owed to the part's min_rate_hz (it earns min_rate_hz per second)
    runs: deque[float] = field(default_factory=lambda: deque(maxlen=600))  # when it ran
    decisions: deque[bool] = field(default_factory=lambda: deque(maxlen=300))


class Scheduler:
    """Decides per frame which parts run (see the module docstring)."""

    def __init__(
        self,
        parts: list[Part],
        target_fps: float,
        budget_ms: float | None = None,
        margin: float = 0.05,
        clock=time.perf_counter,
    ) -> None:
        self.parts = parts
        self.period_ms = 1000.0 / target_fps
        self.budget_ms = budget_ms if budget_ms is not None else self.period_ms
        self.margin = margin
        self._clock = clock
        self._state = {part.name: _PartState() for part in parts}
        self._after_ms = 1.0  # what runs after the parts (retarget, bridges), running average
        self._parts_done: float | None = None
        self._last_frame: float | None = None  # when the previous frame's parts were decided
        self.last_choice: dict[str, int | None] = {}  # part -> detail level it ran at, None: held
        self._body_ms = 0.0  # perception + motion, running average (what `prepare` plans around)
        self._prepared: tuple[int, float, dict[str, int | None]] | None = None  # frame, when, plan

    # --- per frame -------------------------------------------------------------------------------

    def prepare(self, frame: Frame) -> None:
        """Before the body's perception (`perception.parallel`): decide this frame's plan now and start
        the detectors of the planned parts that can run beside the body (`submit`, runtime/parts.py).
        What the body will take (perception + motion) is predicted from the last frames; `run` then
        follows this plan. The cost learned for such a part is what it takes on the node's thread
        (waiting for its result, applying it), which is what the frame pays."""
        now = self._clock()
        plan = self._decide(frame, now, self._body_ms)
        self._prepared = (frame.index, now, plan)
        for part in self.parts:
            detail = plan[part.name]
            if detail is not None and hasattr(part, "submit"):
                self._set_detail(part, detail)
                part.submit(frame)

    def run(self, frame: Frame, observation: Observation, pose: Pose) -> None:
        """Run or hold every part for this frame: decide in order of urgency (the budget goes to the
        most urgent first, at their learned costs), then run or hold in the node's order, which is
        the parts' dependency order (the voice fuses with the mouth the face wrote this frame).
        After `prepare` for this frame, its plan is followed."""
        now = self._clock()
        if self._prepared is not None and self._prepared[0] == frame.index:
            _, prepared_at, plan = self._prepared
            self._body_ms += 0.2 * ((now - prepared_at) * 1000.0 - self._body_ms)
        else:
            plan = self._decide(frame, now, 0.0)
        self._prepared = None
        self.last_choice = plan
        for part in self.parts:
            state = self._state_of(part)
            # (a part added since `prepare`, e.g. by the page, is decided next frame; held till then)
            detail = plan.get(part.name, None if hasattr(part, "hold") else state.detail)
            if detail is None:
                part.hold(frame, observation, pose)
                state.decisions.append(False)
                continue
            self._set_detail(part, detail)
            t0 = self._clock()
            part(frame, observation, pose)
            t1 = self._clock()
            cost = (t1 - t0) * 1000.0
            previous = state.cost_ms.get(detail)
            state.cost_ms[detail] = cost if previous is None else previous + 0.2 * (cost - previous)
            state.last_run = t1
            state.credit = max(state.credit - 1.0, 0.0)
            state.runs.append(t1)
            state.decisions.append(True)
        self._parts_done = self._clock()

    def _decide(self, frame: Frame, now: float, ahead_ms: float) -> dict[str, int | None]:
        """Each part's detail level for this frame (None: hold), with `ahead_ms` of the frame still to
        come before the parts (the body's, when deciding before it)."""
        elapsed = 0.0 if self._last_frame is None else max(now - self._last_frame, 0.0)
        self._last_frame = now
        for part in self.parts:
            min_rate = getattr(part, "min_rate_hz", None)
            if min_rate:
                state = self._state_of(part)
                state.credit = min(state.credit + elapsed * min_rate, MAX_CREDIT)
        started = frame.timing.stages.get("wait", frame.timing.capture)
        spent_ms = (now - started) * 1000.0
        left_ms = self.budget_ms * (1.0 - self.margin) - spent_ms - ahead_ms - self._after_ms
        plan: dict[str, int | None] = {}
        forced = False  # one part a frame over budget for its minimum rate: they take turns
        for part in sorted(self.parts, key=lambda part: -self._urgency(part, now)):
            state = self._state_of(part)
            detail, over = self._choose(part, state, now, left_ms, may_force=not forced)
            forced = forced or over
            plan[part.name] = detail
            if detail is not None:
                left_ms -= self._cost(part, state, detail)
        return plan

    def _set_detail(self, part: Part, detail: int) -> None:
        state = self._state_of(part)
        if detail != state.detail and hasattr(part, "set_detail"):
            part.set_detail(detail)
        state.detail = detail

    def frame_done(self) -> None:
        """Call when the frame is out (after the bridges): learns what runs after the parts."""
        if self._parts_done is None:
            return
        after = (self._clock() - self._parts_done) * 1000.0
        self._after_ms += 0.1 * (after - self._after_ms)
        self._parts_done = None

    # --- decisions -------------------------------------------------------------------------------

    def _state_of(self, part: Part) -> _PartState:
        """A part's state; a part added to the list after the start (the page's) gets one then."""
        return self._state.setdefault(part.name, _PartState())

    def _urgency(self, part: Part, now: float) -> float:
        state = self._state_of(part)
        if state.last_run is None:
            return float("inf")
        wanted = 1.0 / getattr(part, "max_rate_hz", None) if getattr(part, "max_rate_hz", None) else 0.0
        period = max(wanted, self.period_ms / 1000.0)
        stale = (now - state.last_run) / period
        return stale * (1.0 + 4.0 * min(max(float(getattr(part, "activity", 0.0)), 0.0), 1.0))

    def _choose(
        self, part: Part, state: _PartState, now: float, left_ms: float, may_force: bool = True
    ) -> tuple[int | None, bool]:
        """The detail level to run `part` at this frame (None: hold it), and whether it runs over
        budget (owed to its minimum rate, or urgent). `may_force` False: another part already runs
        over budget on this frame for its minimum rate, so this one's waits a frame (urgent runs)."""
        if not hasattr(part, "hold") or state.last_run is None:
            return state.detail, False
        since = now - state.last_run
        max_rate = getattr(part, "max_rate_hz", None)
        if max_rate and since < 1.0 / max_rate:
            return None, False
        levels = range(len(getattr(part, "details", (None,))))
        for level in levels:  # the richest level that fits
            if self._cost(part, state, level) <= left_ms:
                return level, False
        owed = getattr(part, "min_rate_hz", None) and state.credit >= 1.0
        if (owed and may_force) or getattr(part, "urgent", False):  # run anyway, as cheaply as it can
            return max(levels, key=lambda level: -self._cost(part, state, level)), True
        return None, False

    def _cost(self, part: Part, state: _PartState, level: int) -> float:
        if level in state.cost_ms:
            return state.cost_ms[level]
        if state.cost_ms:  # an untried level: a guess from the nearest tried one (cheaper if lower)
            nearest = min(state.cost_ms, key=lambda tried: abs(tried - level))
            return state.cost_ms[nearest] * UNTRIED_LEVEL_FACTOR ** (level - nearest)
        return float(getattr(part, "cost_ms", DEFAULT_COST_MS))

    # --- reporting -------------------------------------------------------------------------------

    def rates(self, window_s: float = 2.0) -> dict[str, float]:
        """Each part's update rate (Hz) over the last `window_s` seconds."""
        now = self._clock()
        return {
            name: sum(1 for t in s.runs if now - t <= window_s) / window_s for name, s in self._state.items()
        }

    def summary(self) -> dict[str, dict[str, float]]:
        """Per part: the share of frames it ran on (recent window), its detail level and costs."""
        out = {}
        for name, s in self._state.items():
            share = sum(s.decisions) / len(s.decisions) if s.decisions else 0.0
            out[name] = {
                "ran_share": share,
                "detail": s.detail,
                **{f"cost_ms_{k}": v for k, v in s.cost_ms.items()},
            }
        return out

    def line(self) -> str:
        """For --stats: what the scheduler chose lately."""
        parts = []
        for name, rate in self.rates().items():
            s = self._state[name]
            parts.append(f"{name} {rate:.1f} Hz (detail {s.detail})")
        return "scheduler: " + ", ".join(parts) if parts else ""
