"""Node configuration: one YAML file (configs/default.yaml), validated by pydantic.

Unknown keys and bad values are errors that name the key and the file; nothing falls back silently.
Each section belongs to one stage; stages read only their own section.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from liverig.core.safe_io import read_yaml_file

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


# No setting needs a number beyond this; larger ones are typos or attacks that overflow later
# (a 1e300 s ease, a 10**40 camera index).
MAX_MAGNITUDE = 1e9


class Section(BaseModel):
    # allow_inf_nan=False: `.inf` / `.nan` are refused for every float key (an infinite ease time
    # turns the output into NaN; an infinite fps writes "Frame Time: 0").
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    # Pairs of thresholds that must keep their order (hysteresis, bands): (low key, high key, strict).
    # One rule for all of them, checked by `_ordered_pairs`, so every message reads the same.
    ORDERED: ClassVar[tuple[tuple[str, str, bool], ...]] = ()

    @model_validator(mode="after")
    def _ordered_pairs(self) -> Section:
        """A release threshold above its trigger (or an inner band wider than the outer) chatters or
        never triggers: refuse it, naming both keys and values."""
        for low, high, strict in self.ORDERED:
            a, b = getattr(self, low), getattr(self, high)
            if a > b or (strict and a == b):
                bound = "larger than" if strict else "at least"
                raise ValueError(f"{high} ({b}) must be {bound} {low} ({a})")
        return self

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value, info):
        """`true` is no number (pydantic would take it as 1), and no number is astronomically large."""
        annotation = cls.model_fields[info.field_name].annotation
        if annotation in (int, float):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {str(value).lower()}")
            if isinstance(value, int | float) and math.isfinite(value) and abs(value) > MAX_MAGNITUDE:
                raise ValueError(f"{value!r} is out of range (at most {MAX_MAGNITUDE:g} in size)")
        return value


class SourceConfig(Section):
    width: int = Field(640, gt=0)  # requested webcam resolution
    height: int = Field(480, gt=0)
    fps: float = Field(30.0, gt=0, le=1000)  # requested webcam rate; the frame rate of audio-only sources
    realtime: bool = True  # video/replay/audio sources play at their own rate (False: as fast as possible)
    reconnect_interval_s: float = Field(1.0, gt=0)  # a lost webcam is retried this often
    # With no --source, webcam:0 must deliver a first frame within this (cameras take up to about a
    # second to start), else the node plays the bundled clip: a shut laptop lid opens but stays dark.
    first_frame_timeout_s: float = Field(3.0, gt=0)
    # A microphone's input buffering in PortAudio before each block reaches the node: "high", the
    # device's safe default (40 ms on the test device), or "low" (about 10 ms less lip-sync delay; a
    # busy machine may then drop samples). docs/voice.md.
    mic_latency: Literal["high", "low"] = "high"


class OneEuroConfig(Section):
    # Defaults: the best setting with at most one frame of lag on real detector output (models/EVAL.md)
    min_cutoff: float = Field(2.0, gt=0)
    beta: float = Field(1.0, ge=0)
    d_cutoff: float = Field(1.0, gt=0)


class HandsConfig(Section):
    """The hands part (runtime/hands.py): 30 finger bones from MediaPipe's HandLandmarker, on crops
    around the body's wrists (the whole frame when no body is seen). Off by default: it costs about
    as much as the body's detector per frame on a small CPU (docs/hands.md)."""

    enabled: bool = False
    model: Literal["lite", "full"] = "full"
    min_detection_confidence: float = Field(0.5, ge=0, le=1)
    min_presence_confidence: float = Field(0.5, ge=0, le=1)
    min_tracking_confidence: float = Field(0.5, ge=0, le=1)
    wrist_min_visibility: float = Field(0.5, ge=0, le=1)  # a body wrist seen less than this: no crop
    # A "hand" whose landmarks span less than this fraction of the searched square's side (the crop)
    # or of the frame's shorter side is a false detection (a fingertip taken for a whole hand).
    min_hand_fraction: float = Field(0.1, ge=0, lt=1)
    hold_s: float = Field(0.1, ge=0)  # a lost hand keeps its pose this long...
    relax_s: float = Field(0.3, gt=0)  # ...then eases to a relaxed hand over this
    reenter_s: float = Field(0.15, gt=0)  # a hand seen again glides to its measured pose over this
    min_rate_hz: float = Field(10.0, gt=0)  # the scheduler never runs the hands less often than this
    # On the hand's landmarks (metres); not tuned on hand data yet: the body's setting.
    one_euro: OneEuroConfig = OneEuroConfig()


class FaceConfig(Section):
    """The face part (runtime/face.py, runtime/expressions.py): blendshapes, blinks, gaze and the
    head's turn from MediaPipe's FaceLandmarker, on a crop around the body's head."""

    enabled: bool = True
    crop_margin: float = Field(1.8, ge=1.0, le=5.0)  # crop side = this x the head's size from the pose
    input_px: int = Field(0, ge=0)  # scale the crop down to at most this side (0: as is); smaller: cheaper
    min_face_detection_confidence: float = Field(0.5, ge=0, le=1)
    min_face_presence_confidence: float = Field(0.5, ge=0, le=1)
    min_tracking_confidence: float = Field(0.5, ge=0, le=1)
    # Blinks: the raw score `blink_open` maps to 0 and `blink_closed` to 1; the eye latches shut at
    # `blink_on` and opens below `blink_off` (hysteresis). Chosen on the carphone clip's real blinks.
    blink_open: float = Field(0.15, ge=0, le=1)
    blink_closed: float = Field(0.5, ge=0, le=1)
    blink_on: float = Field(0.4, ge=0, le=1)
    blink_off: float = Field(0.25, ge=0, le=1)
    blink_link: float = Field(0.3, ge=0, le=1)  # the other eye latches too from this score
    min_cutoff: float = Field(3.0, gt=0)  # One Euro on every other shape: light smoothing
    beta: float = Field(5.0, ge=0)
    lost_ease_s: float = Field(0.3, gt=0)  # a lost face eases to neutral over this
    head_min_cutoff: float = Field(2.0, gt=0)  # One Euro on the face's head turn
    head_beta: float = Field(1.0, ge=0)
    head_ease_s: float = Field(0.3, gt=0)  # the head hands over between face and body over this
    eye_yaw_deg: float = Field(25.0, ge=0, le=60)  # eye turn at a full eyeLookIn/Out
    eye_pitch_deg: float = Field(20.0, ge=0, le=60)  # eye turn at a full eyeLookUp/Down
    min_rate_hz: float = Field(10.0, gt=0)  # the scheduler never runs the face less often than this
    max_rate_hz: float | None = Field(None, gt=0)  # ...nor more often (null: every frame it fits)
    calibration: str | None = None  # a file from `run_node.py --calibrate-face PATH` (docs/face.md)
    calibration_phase_s: float = Field(3.0, gt=0)  # each phase of --calibrate-face lasts this long

    ORDERED = (("blink_open", "blink_closed", True), ("blink_off", "blink_on", False))


class PerceptionConfig(Section):
    model: Literal["lite", "full", "heavy"] = "full"
    min_pose_detection_confidence: float = Field(0.5, ge=0, le=1)
    min_pose_presence_confidence: float = Field(0.5, ge=0, le=1)
    min_tracking_confidence: float = Field(0.5, ge=0, le=1)
    horizontal_fov_deg: float = Field(60.0, gt=1, lt=179)  # used to place the body in camera space
    hands: HandsConfig = HandsConfig()
    face: FaceConfig = FaceConfig()
    # The budget scheduler (runtime/scheduler.py): the body runs every frame, the parts (face...) when
    # they fit in the frame's budget (at least at their min_rate_hz). budget_ms null: 1000 / the
    # source's frame rate. schedule false: every part runs every frame, however long it takes.
    schedule: bool = True
    budget_ms: float | None = Field(None, gt=0)
    # The face's and hands' detectors start before the body's perception, each on a thread of its own,
    # so they run beside it (runtime/parts.py); false: one after the other on the node's thread.
    parallel: bool = True


class RootConfig(Section):
    """The Hips' camera-space position (runtime/motion.py RootFilter), tuned on real detector output
    (`python -m liverig.models.evaluation.evaluate --data realdet`, "Root" section of models/EVAL.md)."""

    # across the image (the view ray): precise, so lightly smoothed (at most one frame of lag)
    ray: OneEuroConfig = OneEuroConfig(min_cutoff=5.0, beta=0.0)
    # along it (the distance, from the body's apparent size): mostly slow error, smoothed as calmly as
    # accuracy allows
    distance: OneEuroConfig = OneEuroConfig(min_cutoff=0.75, beta=0.05)


class BodyConfig(Section):
    # Hold bone lengths at the calibrated ones (runtime/body.py): constant bones in recorded joints,
    # at the cost of some rotational jitter on the avatar (models/EVAL.md), hence off by default.
    lock_bones: bool = False
    calibration_frames: int = Field(30, ge=1)  # confident frames measured per bone before it is frozen
    min_confidence: float = Field(0.5, ge=0, le=1)  # both ends of a bone at least this visible to measure it
    projection_iterations: int = Field(12, ge=1, le=100)  # more: lengths held more exactly, more CPU
    profile: str | None = None  # a body profile from `run_node.py --calibrate-body PATH`: skips measuring


class SidesConfig(Section):
    """Side guard (runtime/sides.py): the detector's brief left/right mix-ups of the forearms and
    shins are swapped back before the motion stage (one_euro and stcnn; models/EVAL.md)."""

    guard: bool = True
    ratio: float = Field(0.5, gt=0, le=1)  # swap back when crossed distances < this x straight ones
    min_apart_m: float = Field(0.1, ge=0)  # limbs nearer each other than this are left alone
    max_hold_s: float = Field(0.4, gt=0)  # longer "mix-ups" are believed: the detector is right after all


class UnseenConfig(Section):
    """Unseen legs (runtime/unseen.py): legs out of view for a while ease into a calm standing pose
    instead of the motion model's guesses (desk and waist-up framing)."""

    legs: bool = True
    pose: Literal["standing", "sitting"] = "standing"  # how a resting leg is posed
    min_confidence: float = Field(0.3, ge=0, le=1)  # a leg with every joint below this is unseen
    after_s: float = Field(1.0, ge=0)  # shorter occlusions are the motion model's to fill
    ease_s: float = Field(0.5, gt=0)


class ReentryConfig(Section):
    """Re-entry (runtime/reentry.py): a joint seen again after an occlusion glides to the model's
    position over `ease_s` instead of jumping there."""

    glide: bool = True
    min_confidence: float = Field(0.3, ge=0, le=1)  # below this a joint counts as hidden...
    seen_confidence: float = Field(0.5, ge=0, le=1)  # ...until it is back up to this (hysteresis)
    min_hidden_s: float = Field(0.1, ge=0)  # shorter dips are flicker, not an occlusion: no glide
    ease_s: float = Field(0.3, gt=0)


class DeadbandConfig(Section):
    """Deadband (runtime/deadband.py; stcnn only): a joint that stays within `inner_m` of its slow
    average (`cutoff_hz`) is held at that average; one `outer_m` away or more is passed through
    untouched."""

    enabled: bool = True
    cutoff_hz: float = Field(0.5, gt=0)
    inner_m: float = Field(0.015, ge=0)
    outer_m: float = Field(0.040, gt=0)

    ORDERED = (("inner_m", "outer_m", True),)


class FeetConfig(Section):
    """Foot lock (runtime/feet.py): a foot the model says is planted stays where it landed.
    `contact_on` and `max_offset_m` are tuned on real detector output (models/EVAL.md, realdet,
    below the Root table); off by default: calmer feet for about 1 % more joint error."""

    lock: bool = False  # stcnn only: the other methods have no contact estimate
    contact_on: float = Field(0.6, ge=0, le=1)  # lock a foot when its contact probability reaches this
    contact_off: float = Field(0.4, ge=0, le=1)  # release it below this (hysteresis: no chatter)
    follow_s: float = Field(1.0, gt=0)  # a held foot drifts towards the detected one this slowly
    max_offset_m: float = Field(0.04, gt=0)  # and is never further from it than this
    release_s: float = Field(0.1, gt=0)  # a released foot eases back to the detected one this fast

    ORDERED = (("contact_off", "contact_on", False),)


class ShareConfig(Section):
    """stcnn: how much of the network's correction the node keeps (runtime/learned_motion.py). On
    performers, bodies and framings it never trained on, the network's correction of the detector is
    partly wrong, and its errors and the detector's are far from equal: keeping a share of it over the
    detector's joints through a light One Euro (`detector`) lowers joint and pose error on held-out
    data (models/EVAL.md, "Network share"; chosen on the validation performers). 1: the network's
    output as it is."""

    network: float = Field(1.0, ge=0, le=1)
    detector: OneEuroConfig = OneEuroConfig(min_cutoff=4.0, beta=3.0)


class MotionConfig(Section):
    method: Literal["stcnn", "one_euro", "raw"] = "stcnn"
    backend: Literal["onnxruntime", "torch", "tensorrt", "cuda"] = "onnxruntime"
    weights: str = "models/weights/stcnn.onnx"  # relative to the project root, or absolute
    one_euro: OneEuroConfig = OneEuroConfig()
    # stcnn: output the prediction this many frames ahead; not recommended yet: the future head does
    # not run ahead of the present (models/MODEL_CARD.md, "Heads")
    lookahead_frames: int = Field(0, ge=0, le=3)
    share: ShareConfig = ShareConfig()  # stcnn: the network's share of the correction
    rest_after_s: float = Field(1.0, ge=0)  # with nobody in view, ease to the rest pose after this
    rest_ease_s: float = Field(0.5, gt=0)
    root: RootConfig = RootConfig()  # one_euro and stcnn; raw keeps the reprojected root as it is
    body: BodyConfig = BodyConfig()
    sides: SidesConfig = SidesConfig()
    unseen: UnseenConfig = UnseenConfig()
    reentry: ReentryConfig = ReentryConfig()
    deadband: DeadbandConfig = DeadbandConfig()
    feet: FeetConfig = FeetConfig()


class RetargetConfig(Section):
    rig: str = "vrm0"  # a profile name in configs/rigs/, or a path to a .vrm/.glb/.gltf file
    mirror: bool = False  # selfie view: the avatar moves like a mirror image
    facing: Literal["camera", "away"] = "camera"
    move_root: bool = True  # move the Hips in space (False: keep them in place, rotation only)
    # first_seen: the avatar starts at its own origin and moves as the person moves from where they
    # were first seen; camera: the avatar's root is the Hips' camera-space position (camera at origin)
    root_origin: Literal["first_seen", "camera"] = "first_seen"


class VmcConfig(Section):
    bundle: bool = True  # some receivers reject bundles: set False to send plain messages
    max_datagram_bytes: int = Field(1472, ge=256, le=65507)  # 1500-byte MTU minus IP/UDP headers


class OscConfig(Section):
    bundle: bool = True  # one frame's messages in MTU-sized bundles; False: plain messages
    max_datagram_bytes: int = Field(1472, ge=256, le=65507)  # 1500-byte MTU minus IP/UDP headers


class WebSocketConfig(Section):
    """The WebSocket output (bridges/ws.py, docs/hardening.md). A token is required when binding to
    anything but loopback: from the LIVERIG_WS_TOKEN environment variable, `token_file`, or `token`
    (not on the command line: other users see it in `ps`)."""

    format: Literal["msgpack", "json"] = "msgpack"
    token: str | None = None  # prefer LIVERIG_WS_TOKEN or token_file
    token_file: str | None = None  # a file holding the token (its first line)
    # Browser pages allowed besides loopback ones (http://localhost:*, http://127.0.0.1:*), spelled as
    # the Origin header is: "https://example.com", "null" (file:// pages). Clients that send no Origin
    # header (native apps, engines, scripts) are not browsers and are always allowed.
    allowed_origins: list[str] = []
    outbox_frames: int = Field(4, ge=1, le=1000)  # per client; a slow client loses the oldest frames
    max_message_bytes: int = Field(4096, ge=64, le=1 << 20)  # larger client messages close the client
    max_clients: int = Field(64, ge=1, le=10000)  # more connections are refused (503)
    # Every frame a client sends (messages, pings, pongs, fragments) is rate-limited: a client over
    # this rate (after a burst) is closed with 1008.
    client_frames_per_s: float = Field(50.0, gt=0)
    client_burst_frames: int = Field(100, ge=1)
    # Bytes waiting to be written to one client (pongs to a client that never reads, frames) beyond
    # this close it: per-client memory stays bounded.
    max_client_buffer_bytes: int = Field(1 << 20, ge=64 * 1024, le=1 << 30)


class BridgesConfig(Section):
    vmc: VmcConfig = VmcConfig()
    osc: OscConfig = OscConfig()
    websocket: WebSocketConfig = WebSocketConfig()


class VoiceFusionConfig(Section):
    """Camera and microphone together (runtime/fusion.py): while the voice is heard, the audio's
    share of how far the mouth opens and when the lips close, and the face's share of the lips'
    shape; silent, the face's mouth passes as it is."""

    timing: float = Field(0.8, ge=0, le=1)
    shape: float = Field(0.5, ge=0, le=1)


class AliveConfig(Section):
    """The audio-only avatar (runtime/alive.py): breathing, blinks, gaze, sway and head motion that
    follows the voice, when there is no camera."""

    enabled: bool = True
    seed: int = 0  # the same seed and audio give the same motion
    head_gain: float = Field(1.0, ge=0, le=3)  # scales nods and tilts
    blink_interval_s: float = Field(3.5, gt=0.5)  # mean time between blinks


class VoiceConfig(Section):
    """Lip sync (runtime/lipsync.py, runtime/voice.py): on with an audio source or --audio."""

    weights: str = "models/weights/viseme.npz"  # relative to the project root, or absolute
    vad_mode: int = Field(3, ge=0, le=3)  # webrtcvad aggressiveness: 3 rejects the most noise
    margin_db: float = Field(9.0, ge=0, le=40)  # the voice must be this far above the noise floor
    loud_range_db: float = Field(24.0, gt=0)  # from there to a fully open mouth
    attack_s: float = Field(0.02, gt=0)  # the mouth opens this fast...
    release_s: float = Field(0.03, gt=0)  # ...and closes this fast
    hangover_s: float = Field(0.03, ge=0)  # speech stays on through pauses this short
    # > 0: a voiced sound after a pause of onset_pause_s opens the mouth on trial for trial_s before
    # the classifier has decided (onsets ~40 ms earlier; clicks and drums after a pause flick the mouth)
    trial_s: float = Field(0.0, ge=0, le=0.2)
    onset_pause_s: float = Field(0.08, ge=0.01, le=2.0)
    # A speaker's vowel profile from `run_node.py calibrate voice PATH` (runtime/voice_profile.py);
    # None: the classifier alone (it works without one)
    calibration: str | None = None
    fusion: VoiceFusionConfig = VoiceFusionConfig()
    alive: AliveConfig = AliveConfig()


class StatsConfig(Section):
    window_frames: int = Field(300, ge=10)  # percentiles are over the last N frames
    print_every_s: float = Field(1.0, gt=0)


class PageConfig(Section):
    """The live page (`--out page://HOST:PORT`, runtime/page.py, docs/page.md)."""

    # The camera image with the landmarks drawn, as a small JPEG stream to the page. Off by default:
    # it shows the room and whoever is in it to anyone who can open the page.
    preview: bool = False
    preview_fps: float = Field(10.0, gt=0, le=30)
    preview_width: int = Field(320, ge=64, le=1280)
    token: str | None = None  # required when serving anything but loopback (as page://...?token=T)
    record_dir: str = "."  # recordings started from the page go into this folder
    save_to: str = "liverig-page.yaml"  # where the page's "save settings" writes (a config file)


class NodeConfig(Section):
    source: SourceConfig = SourceConfig()
    perception: PerceptionConfig = PerceptionConfig()
    motion: MotionConfig = MotionConfig()
    retarget: RetargetConfig = RetargetConfig()
    bridges: BridgesConfig = BridgesConfig()
    voice: VoiceConfig = VoiceConfig()
    stats: StatsConfig = StatsConfig()
    page: PageConfig = PageConfig()


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


def load_config(path: str | Path | None = None) -> NodeConfig:
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = read_yaml_file(path, "config", ConfigError)  # regular files, size-, depth-limited, UTF-8
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: the top level must be a mapping of sections")
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = " ".join(str(first["msg"]).split())  # one line, whatever the value held
        raise ConfigError(f"config {path}: key '{key}': {message[:200]}") from None
