"""The hardening suite: hostile input, faults and floods, against the real node (docs/hardening.md).

    python -m liverig.harden  # the long run: >= 10,000 inputs per surface, 100 kills, floods
    python -m liverig.harden --quick         # a seeded short run (what CI runs inside pytest)
    python -m liverig.harden --phases fuzz --inputs 2000 --seed 7
    python -m liverig.harden --phases fuzz --engine atheris --inputs 10000   # coverage-guided

Phases:
  fuzz    property-based fuzzing (hypothesis) of every input surface: the config loader, body profiles,
          rig profiles (YAML), glTF/VRM rigs, the landmark reader (and what it accepts through the
          motion stage, the retargeter and the output guard), the source and output spec parsers,
          WebSocket client messages against a live server, the audio specs (`--source audio:PATH|
          mic:N|mic:default`, `--audio SPEC`: parsed and opened) and sound files (real wav/flac/ogg
          damaged: truncated, absurd header fields, NaN samples, huge chunks; played through the
          lip sync). Each input must end in a result or in
          the surface's own one-line error within 10 s: a traceback, a hang, a multi-line message or
          a non-finite number reaching an output is a finding. `--engine atheris` drives the same
          surfaces and checks coverage-guided (libFuzzer mutating real seed files; one child process
          per surface: runtime/harden_atheris.py).
  faults  disk full (RLIMIT_FSIZE: the kernel refuses the write; and a 64 KB tmpfs where mounting is
          permitted), the output folder removed mid-run, receivers gone (VMC to a closed port, a
          WebSocket client that resets), a camera whose read raises, and SIGKILL at random moments
          while recording: every file must stay readable.
  flood   one good WebSocket client and 20 bad ones (readers that never read, resets, garbage,
          10 MB messages, control-ping floods, message floods) against the node's ws:// output:
          the good client's frames per second and delay (p50/p99; it runs in a process of its own),
          the node's RSS.

The exit status is 1 when anything was found (or a target missed), else 0; `--json PATH` writes the
figures. Everything runs on loopback and in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "still_hold.landmarks.jsonl"
HANG_S = 10.0


class Hang(Exception):
    """An input that took longer than HANG_S."""


@dataclass
class SurfaceResult:
    name: str
    inputs: int = 0
    outcomes: Counter = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    coverage: dict[str, int] = field(default_factory=dict)  # atheris: libFuzzer's cov/ft/corpus at the end

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        reached = "".join(f"; {k} {v}" for k, v in self.coverage.items())
        return (
            f"{self.name:<14} {self.inputs:>6} inputs ({kinds}); slowest {self.slowest_s * 1000:.0f} ms"
            f"{reached}; findings: {len(self.findings)}"
        )


@dataclass
class Campaign:
    """One surface as either engine drives it: hypothesis draws from `strategy`; atheris (libFuzzer,
    coverage-guided: runtime/harden_atheris.py) mutates the real inputs in `seeds` as raw bytes and
    hands each to `decode`. Both judge the result through `judge` with the same `check`, so what
    counts as a finding is the same for both."""

    name: str
    strategy: Any
    check: Callable[[Any], str]
    expected: tuple[type[BaseException], ...] = ()
    names: str = ""  # what every refusal must contain (the file)
    seeds: list[bytes] = field(default_factory=list)
    decode: Callable[[bytes], Any] = bytes
    finish: Callable[[SurfaceResult], None] | None = None  # checks after the last input


def _alarm(signum, frame):
    raise Hang()


def _one_line_error(error: BaseException, result: SurfaceResult, value: Any) -> None:
    message = str(error)
    if not message or "\n" in message or len(message) > 1000:
        result.findings.append(
            f"not one line: {type(error).__name__}: {message[:200]!r} for {repr(value)[:200]}"
        )


def _finite(*arrays: Any) -> bool:
    for array in arrays:
        if array is None:
            continue
        values = np.asarray(array, dtype=np.float64)
        if not np.isfinite(values).all():
            return False
    return True


def judge(campaign: Campaign, result: SurfaceResult, value: Any, alarm: bool = True) -> None:
    """Run `campaign.check` on one input and record its outcome: an exception of an `expected` type
    must be one line naming the culprit (containing `names`: the file); any other exception, a hang
    or a check's own complaint is a finding (recorded; the run goes on). `alarm=False` leaves hangs
    to the caller (libFuzzer's -timeout owns SIGALRM in an atheris child)."""
    result.inputs += 1
    if alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, HANG_S)
    start = time.perf_counter()
    try:
        result.outcomes[campaign.check(value)] += 1
    except campaign.expected as error:
        result.outcomes["refused"] += 1
        _one_line_error(error, result, value)
        if campaign.names not in str(error):
            result.findings.append(f"does not name {campaign.names!r}: {str(error)[:200]!r}")
    except Hang:
        result.outcomes["hang"] += 1
        result.findings.append(f"hang (> {HANG_S:g} s) for {repr(value)[:200]}")
    except Exception as error:  # noqa: BLE001 - a traceback is what we are looking for
        result.outcomes["traceback"] += 1
        where = traceback.extract_tb(error.__traceback__)[-1]
        result.findings.append(
            f"{type(error).__name__}: {str(error)[:120]} at {where.filename}:{where.lineno} "
            f"for {repr(value)[:200]}"
        )
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        result.slowest_s = max(result.slowest_s, time.perf_counter() - start)


def _write(path: Path, value: str | bytes) -> None:
    """A fuzzed document to disk: hypothesis draws text, atheris hands raw bytes."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogatepass")
    path.write_bytes(value)


def _text(data: bytes) -> str:
    """Fuzzed bytes as a command-line string (Python's own mapping of undecodable argv bytes)."""
    return data.decode("utf-8", "surrogateescape")


def run_surface(campaign: Campaign, inputs: int, seed: int) -> SurfaceResult:
    """Feed `inputs` hypothesis examples to the campaign's `check` (`judge` says what is a finding)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    result = SurfaceResult(campaign.name)

    @hypothesis_seed(seed)
    @settings(
        max_examples=inputs,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(campaign.strategy)
    def feed(value):
        judge(campaign, result, value)

    feed()
    if campaign.finish is not None:
        campaign.finish(result)
    return result


Runner = Callable[[Campaign, int, int], SurfaceResult]


# ---- strategies --------------------------------------------------------------------------------------


def _strategies():
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(
            [".inf", "-.inf", ".nan", "1e400", "0x10", "~", "yes", "&a x", "*a", "!!python/object:os.system"]
        ),
    )
    json_values = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=20,
    )
    return st, scalars, json_values


def _yaml_mutations(st, scalars, text: str):
    """A real YAML document with one to three of its scalars (or lines) replaced by hostile ones."""
    lines = text.splitlines()

    @st.composite
    def mutate(draw):
        out = list(lines)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(out) - 1))
            how = draw(st.integers(0, 4))
            if how == 0 and ":" in out[i]:
                key = out[i].split(":", 1)[0]
                out[i] = f"{key}: {draw(scalars)!s}"
            elif how == 1:
                out[i] = draw(st.text(max_size=40))
            elif how == 2:
                out.insert(i, out[i])  # a duplicated line
            elif how == 3:
                out[i] = out[i].replace("[", "[" * draw(st.integers(1, 60)))
            else:
                del out[i]
        return "\n".join(out) + "\n"

    return st.one_of(
        mutate(), st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    )


# ---- the surfaces ------------------------------------------------------------------------------------


def _config_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    from liverig.core.config import ConfigError, load_config

    st, scalars, _ = _strategies()
    path = folder / "fuzz.yaml"
    text = (ROOT / "configs" / "default.yaml").read_text()
    strategy = st.one_of(_yaml_mutations(st, scalars, text), st.binary(max_size=300))

    def check(value) -> str:
        _write(path, value)
        config = load_config(path)
        floats = [v for v in _leaves(config.model_dump()) if isinstance(v, float)]
        if not all(math.isfinite(v) for v in floats):
            raise AssertionError("a non-finite number was accepted")
        return "accepted"

    seeds = [text.encode(), b"source:\n  fps: 30\nmotion:\n  method: one_euro\n", b"{}\n"]
    return run(Campaign("config", strategy, check, (ConfigError,), str(path), seeds), inputs, seed)


def _leaves(value: Any):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _profile_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    from liverig.runtime.body import BONE_NAMES, BodyProfileError, load_profile

    st, scalars, _ = _strategies()
    path = folder / "profile.yaml"
    text = "liverig_body_profile: 1\nbones:\n" + "".join(f"  {name}: 0.3\n" for name in BONE_NAMES)

    def check(value: str | bytes) -> str:
        _write(path, value)
        lengths = load_profile(path)
        if not np.all(np.isnan(lengths) | ((lengths >= 0.005) & (lengths <= 1.5))):
            raise AssertionError("a length out of range was accepted")
        return "accepted"

    seeds = [text.encode(), text.replace("0.3", "nan", 3).encode()]
    strategy = _yaml_mutations(st, scalars, text)
    return run(Campaign("body profile", strategy, check, (BodyProfileError,), "", seeds), inputs, seed)


def _rig_yaml_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    from liverig.runtime.retarget import RigError
    from liverig.runtime.rigs import load_rig

    st, scalars, _ = _strategies()
    path = folder / "rig.yaml"
    text = (ROOT / "configs" / "rigs" / "vrm0.yaml").read_text()

    def check(value: str | bytes) -> str:
        _write(path, value)
        profile = load_rig(str(path))
        if not _finite([bone.offset for bone in profile.bones], [bone.rotation for bone in profile.bones]):
            raise AssertionError("a non-finite rest pose was accepted")
        return "accepted"

    seeds = [rig.read_bytes() for rig in sorted((ROOT / "configs" / "rigs").glob("*.yaml"))]
    strategy = _yaml_mutations(st, scalars, text)
    return run(Campaign("rig YAML", strategy, check, (RigError,), str(path), seeds), inputs, seed)


def seed_gltf() -> dict:
    """A VRM 1.0-style glTF document of the shipped vrm1 rig: the fuzzer's starting point, deep
    enough that mutations reach the humanoid mapping and axis detection."""
    from liverig.runtime.rigs import load_rig

    profile = load_rig("vrm1")
    names = profile.bone_names
    nodes: list[dict] = []
    for bone in profile.bones:
        nodes.append({"name": bone.name, "translation": list(bone.offset), "rotation": list(bone.rotation)})
    for i, bone in enumerate(profile.bones):
        if bone.parent is not None:
            nodes[names.index(bone.parent)].setdefault("children", []).append(i)
    human = {
        (b.humanoid[0].lower() + b.humanoid[1:]): {"node": i}
        for i, b in enumerate(profile.bones)
        if b.humanoid
    }
    return {
        "asset": {"version": "2.0"},
        "nodes": nodes,
        "skins": [{"joints": list(range(len(nodes)))}],
        "extensions": {"VRMC_vrm": {"humanoid": {"humanBones": human}}},
    }


def _gltf_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    from liverig.runtime.gltf_rig import read_gltf_rig
    from liverig.runtime.retarget import RigError

    st, scalars, json_values = _strategies()
    document = seed_gltf()
    count = len(document["nodes"])
    node_keys = st.sampled_from(["name", "children", "translation", "rotation", "scale", "matrix", "skin"])

    @st.composite
    def mutated(draw):
        doc = json.loads(json.dumps(document))
        for _ in range(draw(st.integers(1, 4))):
            how = draw(st.integers(0, 5))
            i = draw(st.integers(0, count - 1))
            value = draw(json_values)
            with contextlib.suppress(IndexError, KeyError, TypeError, AttributeError):  # an earlier mutation
                if how == 0:
                    doc["nodes"][i][draw(node_keys)] = value
                elif how == 1:  # a child pointing anywhere: cycles, second parents, out of range
                    doc["nodes"][i].setdefault("children", []).append(draw(st.integers(-2, count + 2)))
                elif how == 2:
                    doc["nodes"][i]["translation"] = [draw(st.floats(width=64)) for _ in range(3)]
                elif how == 3:
                    human = doc["extensions"]["VRMC_vrm"]["humanoid"]["humanBones"]
                    human[draw(st.sampled_from(sorted(human)))] = value
                elif how == 4:
                    doc[draw(st.sampled_from(["skins", "extensions", "nodes", "scenes"]))] = value
                else:
                    doc["nodes"][i]["rotation"] = [draw(st.floats(-2, 2)) for _ in range(4)]
        return doc

    glb = folder / "rig.glb"
    gltf = folder / "rig.gltf"

    def check(value) -> str:
        if isinstance(value, bytes):  # a raw container
            glb.write_bytes(value)
            path = glb
        elif isinstance(value, tuple):  # atheris: raw .gltf bytes
            gltf.write_bytes(value[1])
            path = gltf
        else:
            text = json.dumps(value, allow_nan=True).encode()
            if len(text) % 2:
                path = gltf
                gltf.write_bytes(text)
            else:  # the same document in a .glb container
                path = glb
                glb.write_bytes(_glb(text))
        profile, _ = read_gltf_rig(path)
        if not _finite([bone.offset for bone in profile.bones], [bone.rotation for bone in profile.bones]):
            raise AssertionError("a non-finite rest pose was accepted")
        return "accepted"

    raw = st.binary(max_size=64).map(lambda b: b"glTF" + struct.pack("<II", 2, 20 + len(b)) + b)
    text = json.dumps(document).encode()
    return run(
        Campaign(
            "glTF/VRM rig",
            st.one_of(mutated(), raw),
            check,
            (RigError,),
            str(folder),
            seeds=[text, _glb(text)],
            decode=lambda data: data if data.startswith(b"glTF") else ("gltf", data),  # the container
        ),
        inputs,
        seed,
    )


def _glb(text: bytes) -> bytes:
    """A glTF JSON document in a binary .glb container (one JSON chunk)."""
    text += b" " * (-len(text) % 4)
    header = struct.pack("<4sII", b"glTF", 2, 20 + len(text))
    return header + struct.pack("<II", len(text), 0x4E4F534A) + text


def _landmark_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    from liverig.core.config import NodeConfig
    from liverig.core.types import Timing
    from liverig.runtime.finite import OutputGuard
    from liverig.runtime.motion_methods import make_motion
    from liverig.runtime.recording import iter_landmark_recording
    from liverig.runtime.retarget import Retargeter
    from liverig.runtime.rigs import load_rig

    st, scalars, json_values = _strategies()
    header, *lines = FIXTURE.read_text().splitlines()
    records = [json.loads(line) for line in lines[:8]]
    keys = ["index", "time_s", "present", "image_size", "image", "world", "visibility"]
    config = NodeConfig()
    config.motion.method = "one_euro"
    retarget = Retargeter(load_rig("vrm0"), config.retarget)
    path = folder / "lm.jsonl"
    hostile = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, -1e308, 1e39, 86400.0, -1.0]),
        json_values,
    )

    @st.composite
    def recording(draw):
        out = [dict(r) for r in records]
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(out) - 1))
            how = draw(st.integers(0, 4))
            key, value = draw(st.sampled_from(keys)), draw(hostile)
            if not isinstance(out[i], dict):
                continue
            if how == 0:
                out[i][key] = value
            elif how == 1 and out[i].get("present") and isinstance(out[i].get("world"), list):
                with contextlib.suppress(IndexError, TypeError):  # an earlier mutation reshaped it
                    out[i]["world"] = [list(p) for p in out[i]["world"]]
                    out[i]["world"][draw(st.integers(0, 32))][draw(st.integers(0, 2))] = value
            elif how == 2:
                out[i] = draw(json_values)
            elif how == 3:
                out[i].pop(key, None)
            else:
                out[i]["time_s"] = draw(st.floats(allow_nan=True, allow_infinity=True))
        text = [json.dumps(r, allow_nan=True) for r in out]
        if draw(st.integers(0, 4)) == 0:  # now and then a line that is no JSON at all
            text[draw(st.integers(0, len(text) - 1))] = draw(st.text(max_size=60))
        return header + "\n" + "\n".join(text) + "\n"

    def check(text: str | bytes) -> str:
        _write(path, text)
        motion = make_motion(config.motion, config.perception)
        guard = OutputGuard()
        from liverig.runtime.finite import ReplayClock

        clock = ReplayClock(30.0)
        _, frames = iter_landmark_recording(path)
        try:
            for observation in frames:
                observation.time_s = clock(observation.time_s)
                observation.timing = Timing(time.perf_counter())
                if observation.present and not _finite(
                    observation.world_landmarks, observation.image_landmarks, observation.visibility
                ):
                    raise AssertionError("a non-finite landmark was accepted")
                pose = motion(observation)
                pose, (rig,) = guard(pose, [retarget(pose)])
                if not _finite(
                    pose.joints,
                    pose.root_position,
                    rig.local_rotations,
                    rig.local_positions,
                    rig.root_position,
                    rig.root_rotation,
                    [pose.time_s, rig.time_s],
                ):
                    raise AssertionError("a non-finite number reached the outputs")
        finally:
            frames.close()
        return "played"

    seeds = []
    for fixture in sorted((ROOT / "tests" / "fixtures").glob("*.landmarks.jsonl")):
        head, *rest = fixture.read_text().splitlines()
        seeds.append(("\n".join([head, *rest[:4]]) + "\n").encode())
    return run(Campaign("landmarks", recording(), check, (ValueError,), f"{path}:", seeds), inputs, seed)


def _spec_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    from liverig.bridges.outputs import SpecError, parse_spec
    from liverig.runtime.page import parse_page_spec
    from liverig.runtime.sources import SourceError, parse_source_spec

    st, _, _ = _strategies()
    prefixes = st.sampled_from(
        ["webcam:", "video:", "replay:", "vmc://", "osc://", "ws://", "page://", "bvh:", "record:", ""]
    )
    tails = st.one_of(
        st.text(max_size=60),
        st.from_regex(r"[0-9]{1,50}", fullmatch=True),
        st.from_regex(r"\[?[0-9a-f:.]{0,40}\]?(:[0-9]{0,8})?(\?[a-z=&%]{0,30})?", fullmatch=True),
    )

    def check(value: tuple[str, str]) -> str:
        spec = value[0] + value[1]
        try:
            parse_source_spec(spec)
        except SourceError as error:
            if "\n" in str(error) or len(str(error)) > 400:
                raise AssertionError(f"source error not one short line: {str(error)[:100]!r}") from None
        parse = parse_page_spec if spec.lower().startswith("page:") else parse_spec  # as the node does
        leak = _token_shown(spec, parse, SpecError)
        if leak:
            raise AssertionError(f"a token is shown: {leak[:200]!r}")
        parse(spec)
        return "parsed"

    seeds = [
        b"webcam:0",
        b"video:clip.mp4",
        f"replay:{FIXTURE}".encode(),
        b"vmc://127.0.0.1:39539",
        b"osc://127.0.0.1:9000",
        b"ws://127.0.0.1:8765?token=s3cret&format=json",
        b"ws://[::1]:8765",
        b"page://127.0.0.1:8766?token=s3cret&preview=on",
        b"bvh:take1.bvh",
        b"record:out/take1.jsonl",
    ]
    return run(
        Campaign(
            "specs",
            st.tuples(prefixes, tails),
            check,
            (SpecError,),
            seeds=seeds,
            decode=lambda data: (_text(data), ""),
        ),
        inputs,
        seed,
    )


TOKEN_MARK = "Qz9tokenmark"


def _token_shown(spec: str, parse_spec, error_type) -> str | None:
    """The refusal that shows a token, if any. Each value in `spec` (after an `=`, up to `&`, `#` or
    the end) gets a marker appended; where that value is a token (after `token=`, as promised, or
    the `token` parse_qs finds: the parser's own view) the marker must not be in the refusal.
    (Comparing the token's text with the message instead flags a token that also appears
    elsewhere in the spec, as a host or another key's value.)"""
    from urllib.parse import parse_qs, urlsplit

    for equals in [i for i, c in enumerate(spec) if c == "="]:
        end = min([j for j in (spec.find("&", equals), spec.find("#", equals)) if j >= 0] or [len(spec)])
        probe = spec[:end] + TOKEN_MARK + spec[end:]
        try:
            parsed = parse_qs(urlsplit(probe).query, keep_blank_values=True).get("token", [])
        except ValueError:
            parsed = []
        is_token = re.search(r"token=[^&#]*$", spec[:end], re.IGNORECASE) or any(
            TOKEN_MARK in value for value in parsed
        )
        if not is_token:
            continue
        try:
            parse_spec(probe)
        except error_type as error:
            if TOKEN_MARK in str(error):
                return str(error)
    return None


def _ws_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    """Client messages to a live server while a good client watches the stream: the server must
    answer or close the bad client, and keep streaming to the good one."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    from liverig.bridges.ws import WebSocketServer
    from liverig.core.config import WebSocketConfig

    st, _, json_values = _strategies()
    server = WebSocketServer(
        "127.0.0.1",
        0,
        WebSocketConfig(client_frames_per_s=1e6, client_burst_frames=10**6),
        probation=False,  # it reconnects after every close on purpose: messages are what it fuzzes
    )
    rig = _demo_rig()
    stop = threading.Event()
    good_frames = Counter()

    def feed() -> None:
        while not stop.is_set():
            server.send(None, rig)
            time.sleep(1 / 60)

    def watch() -> None:
        with connect(f"ws://127.0.0.1:{server.port}", open_timeout=5) as good:
            while not stop.is_set():
                try:
                    good.recv(timeout=0.5)
                    good_frames["frames"] += 1
                except TimeoutError:
                    continue
                except ConnectionClosed:  # the server closing at the end
                    return

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=watch, daemon=True)]
    for thread in threads:
        thread.start()
    messages = st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        json_values.map(lambda v: json.dumps(v)),
        json_values.map(_pack),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["ping", "pong", "hello", ""]), "id": json_values}
        ).map(json.dumps),
        st.fixed_dictionaries({"type": st.just("ping"), "id": json_values}).map(_pack),
        st.integers(4000, 9000).map(lambda n: "x" * n),
    )
    state: dict[str, Any] = {"client": None}

    def check(message) -> str:
        client = state["client"]
        if client is None:
            try:
                client = state["client"] = connect(
                    f"ws://127.0.0.1:{server.port}", open_timeout=5
                ).__enter__()
            except InvalidStatus as error:
                raise AssertionError(f"refused a plain client: {error}") from None
        try:
            client.send(message)
            reply = client.recv(timeout=0.2)
            return "answered" if reply else "quiet"
        except TimeoutError:
            return "quiet"
        except ConnectionClosed:
            with contextlib.suppress(Exception):
                client.close()
            state["client"] = None
            return "closed"

    before = good_frames["frames"]

    def finish(result: SurfaceResult) -> None:
        time.sleep(0.5)
        if good_frames["frames"] <= before:
            result.findings.append("the good client stopped receiving frames")
        if not server._thread.is_alive():
            result.findings.append("the server thread died")

    def decode(data: bytes) -> str | bytes:
        """atheris: a leading "t" makes a text message of the rest, as does JSON; else binary."""
        if data[:1] == b"t":
            return data[1:].decode("utf-8", "replace")
        if data[:1] == b"{":
            return data.decode("utf-8", "replace")
        return data

    seeds = [
        b'{"type": "ping", "id": 1}',
        b'{"type": "hello", "id": "studio"}',
        _pack({"type": "ping", "id": 7}),
        b"t" + b"x" * 5000,
    ]
    try:
        campaign = Campaign("ws messages", messages, check, seeds=seeds, decode=decode, finish=finish)
        result = run(campaign, inputs, seed)
    finally:
        stop.set()
        if state["client"] is not None:
            with contextlib.suppress(Exception):
                state["client"].close()
        server.close()
    return result


def _play_audio(spec: str, lipsync) -> int:
    """Open `spec` as `--source` does (unpaced: as fast as it reads), feed every frame's samples to the
    lip sync, and check samples and lip-sync results are finite; the frame count."""
    from liverig.core.config import SourceConfig
    from liverig.runtime.sources import open_source

    source = open_source(spec, SourceConfig(realtime=False, fps=30.0))
    frames = 0
    try:
        for frame in source.frames():
            frames += 1
            samples = frame.audio
            if samples is None or not _finite(samples) or (len(samples) and np.abs(samples).max() > 1.0):
                raise AssertionError("samples that are not finite or beyond full scale reached the voice")
            for result in lipsync.feed(samples):
                values = [result.loudness_db, result.openness, result.pitch_hz, *result.expressions.values()]
                if not _finite(values):
                    raise AssertionError(f"a non-finite lip-sync value: {result}")
    finally:
        source.close()
    return frames


def _lipsync():
    from liverig.core.config import VoiceConfig
    from liverig.runtime.voice import VoicePart

    return VoicePart(VoiceConfig()).lipsync


def _audio_spec_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    """`--source audio:PATH|mic:N|mic:default` and `--audio SPEC`: parsed and opened as the node does
    (a microphone opened through PortAudio and closed; a file played through the lip sync)."""
    import soundfile

    from liverig.core.config import SourceConfig
    from liverig.core.safe_io import shown
    from liverig.runtime.audio import AudioError, open_audio, parse_audio_spec
    from liverig.runtime.sources import SourceError, parse_source_spec

    st, _, _ = _strategies()
    good = folder / "spec.wav"
    t = np.arange(4000) / 16000
    soundfile.write(good, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    (folder / "spec_dir").mkdir(exist_ok=True)
    (folder / "spec.txt").write_text("not audio\n")
    fifo = folder / "spec.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    paths = st.sampled_from(
        [
            str(good),
            str(folder / "spec_dir"),
            str(folder / "spec.txt"),
            str(fifo),
            "/dev/zero",
            str(folder / "missing.wav"),
            "mic",
            "default",
            str(good) + "\0x",
            "a" * 5000,
        ]
    )
    prefixes = st.sampled_from(["audio:", "mic:", "audio:mic:", "mic:mic:", "", "Audio:", " audio:"])
    tails = st.one_of(
        paths,
        st.text(max_size=60),
        st.from_regex(r"[0-9]{1,50}", fullmatch=True),
        st.sampled_from(["default", "DEFAULT", "-1", "+1", "0x1", "１", "٣", "0 ", "1e3", "9999", "10000"]),
    )
    lipsync = _lipsync()

    def named(error: Exception, spec: str) -> None:
        message = str(error)
        if "\n" in message or len(message) > 400:
            raise AssertionError(f"not one short line: {message[:100]!r}")
        shown_spec = shown(spec)
        try:
            kind, argument = parse_audio_spec(spec)
            alias = shown(f"{kind}:{argument}")
        except AudioError:
            alias = shown_spec
        if shown_spec[:30] not in message and alias[:30] not in message:
            raise AssertionError(f"does not name the spec {shown_spec[:60]!r}: {message[:200]!r}")

    def check(value: tuple[str, str]) -> str:
        spec = value[0] + value[1]
        outcome = "refused"
        try:  # --source SPEC
            parse_source_spec(spec)
            _play_audio(spec, lipsync)
            outcome = "played"
        except SourceError as error:
            named(error, spec)
        try:  # --audio SPEC
            parse_audio_spec(spec)
            open_audio(spec, SourceConfig(realtime=False)).close()
            outcome = "played" if outcome == "played" else "opened"
        except AudioError as error:
            named(error, spec)
        return outcome

    specs = st.one_of(
        st.tuples(prefixes, tails),
        st.sampled_from([f"audio:{good}", "mic:0", "mic:default", "audio:mic", "mic:9999"]).map(
            lambda s: (s, "")
        ),
        # The good file under many names (hypothesis never repeats an input): the accepted path.
        st.tuples(st.integers(0, 400), st.sampled_from(["/.", "//", "/spec_dir/.."])).map(
            lambda n: ("audio:", str(folder) + n[1] * n[0] + "/spec.wav")
        ),
    )
    seeds = [f"audio:{good}".encode(), b"mic:0", b"mic:default", f"audio:{folder / 'spec_dir'}".encode()]
    campaign = Campaign("audio specs", specs, check, seeds=seeds, decode=lambda data: (_text(data), ""))
    return run(campaign, inputs, seed)


def _audio_seeds(folder: Path) -> dict[str, bytes]:
    """Small real sound files of each container the node reads: the fuzzer's starting points."""
    import soundfile

    t = np.arange(int(0.2 * 48000)) / 48000
    tone = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    seeds = {}
    for name, rate, channels, fmt, subtype in [
        ("pcm16.wav", 22050, 2, "WAV", "PCM_16"),
        ("float.wav", 16000, 1, "WAV", "FLOAT"),
        ("pcm24.flac", 44100, 1, "FLAC", "PCM_24"),
        ("vorbis.ogg", 48000, 2, "OGG", "VORBIS"),
    ]:
        data = tone[: int(0.2 * rate)]
        data = np.stack([data] * channels, axis=1) if channels > 1 else data
        path = folder / f"seed_{name}"
        soundfile.write(path, data, rate, format=fmt, subtype=subtype)
        seeds[name] = path.read_bytes()
    return seeds


WAV_FIELDS = {
    "riff_size": (4, "<I"),
    "channels": (22, "<H"),
    "rate": (24, "<I"),
    "byte_rate": (28, "<I"),
    "block_align": (32, "<H"),
    "bits": (34, "<H"),
    "data_size": (40, "<I"),
}


def _audio_file_surface(folder: Path, inputs: int, seed: int, run: Runner = run_surface) -> SurfaceResult:
    """Sound files as `audio:PATH`: real wav/flac/ogg files truncated, with bytes flipped, header
    fields set to absurd values (0 channels, a rate of 0 or 4 GHz, a data size of 4 GB), NaN, inf and
    huge float samples, huge chunks, or not audio at all; each played through the lip sync."""
    st, _, _ = _strategies()
    seeds = _audio_seeds(folder)
    path = folder / "fuzz_audio"
    lipsync = _lipsync()
    absurd = st.sampled_from([0, 1, 2, 3, 255, 1000, 7999, 8000, 44101, 65535, 2**31 - 1, 2**32 - 1])

    @st.composite
    def mutated(draw):
        name = draw(st.sampled_from(sorted(seeds)))
        data = bytearray(seeds[name])
        for _ in range(draw(st.integers(1, 3))):
            how = draw(st.integers(0, 5))
            if how == 0:  # truncated
                del data[draw(st.integers(0, max(0, len(data) - 1))) :]
            elif how == 1 and data:  # bytes flipped
                for _ in range(draw(st.integers(1, 16))):
                    data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            elif how == 2 and name.endswith(".wav") and len(data) >= 44:  # a header field
                offset, fmt = WAV_FIELDS[draw(st.sampled_from(sorted(WAV_FIELDS)))]
                value = draw(st.one_of(absurd, st.integers(0, 2**32 - 1)))
                data[offset : offset + struct.calcsize(fmt)] = struct.pack(
                    fmt, value % (1 << (8 * struct.calcsize(fmt)))
                )
            elif how == 3 and name == "float.wav" and len(data) > 48:  # hostile float samples
                special = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e30, -3.4e38, 1e-45]))
                for _ in range(draw(st.integers(1, 50))):
                    at = 44 + 4 * draw(st.integers(0, (len(data) - 48) // 4))
                    data[at : at + 4] = struct.pack("<f", special)
            elif how == 4 and name.endswith(".wav") and len(data) >= 36:  # a huge chunk before the data
                size = draw(st.sampled_from([0xFFFFFFF0, 0x7FFFFFFF, 1 << 30, 3]))
                data[36:36] = b"LIST" + struct.pack("<I", size) + b"INFO"
            elif how == 5 and data:  # a slice repeated
                start = draw(st.integers(0, len(data) - 1))
                data[start:start] = data[start : start + draw(st.integers(1, 4096))] * draw(st.integers(1, 8))
        return bytes(data)

    strategy = st.one_of(
        mutated(), st.binary(max_size=600), st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS"])
    )

    def check(value: bytes) -> str:
        path.write_bytes(value)
        frames = _play_audio(f"audio:{path}", lipsync)
        return "played" if frames else "empty"

    from liverig.runtime.sources import SourceError

    campaign = Campaign("audio files", strategy, check, (SourceError,), str(path), list(seeds.values()))
    return run(campaign, inputs, seed)


def _pack(value: Any) -> bytes:
    """msgpack bytes of `value` (integers beyond 64 bits sent as their text)."""
    import msgpack

    try:
        return msgpack.packb(value)
    except (OverflowError, ValueError):
        return msgpack.packb(repr(value))


def _demo_rig():
    from liverig.core.config import RetargetConfig
    from liverig.core.types import Pose, Timing
    from liverig.runtime.retarget import Retargeter
    from liverig.runtime.rigs import load_rig

    retarget = Retargeter(load_rig("vrm0"), RetargetConfig())
    from liverig.core.skeleton import JOINT_NAMES

    pose = Pose(
        0,
        0.0,
        Timing(time.perf_counter()),
        False,
        np.zeros((len(JOINT_NAMES), 3)),
        np.zeros(len(JOINT_NAMES)),
    )
    return retarget(pose)


SURFACES = {
    "config": _config_surface,
    "profile": _profile_surface,
    "rig_yaml": _rig_yaml_surface,
    "gltf": _gltf_surface,
    "landmarks": _landmark_surface,
    "specs": _spec_surface,
    "ws": _ws_surface,
    "audio_specs": _audio_spec_surface,
    "audio_files": _audio_file_surface,
}


def fuzz(inputs: int, seed: int, surfaces: list[str] | None = None, log=print) -> list[SurfaceResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="liverig-harden-") as folder:
        for name in surfaces or list(SURFACES):
            start = time.perf_counter()
            result = SURFACES[name](Path(folder), inputs, seed)
            log(f"  {result.line()} [{time.perf_counter() - start:.0f} s]")
            for finding in result.findings[:5]:
                log(f"    finding: {finding}")
            results.append(result)
    return results


# ---- faults -------------------------------------------------------------------------------------------


def long_replay(folder: Path, seconds: float) -> tuple[Path, int]:
    """The fixture's frames repeated for `seconds` (indices and times continued)."""
    header, *lines = FIXTURE.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    step = records[1]["time_s"] - records[0]["time_s"]
    count = int(seconds / step)
    path = folder / f"replay_{count}.jsonl"
    with path.open("w") as handle:
        handle.write(header + "\n")
        for i in range(count):
            record = records[i % len(records)]
            record = {**record, "index": i, "time_s": round(i * step, 6)}
            handle.write(json.dumps(record) + "\n")
    return path, count


def _node(*args: Any, preexec=None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run_node.py"), *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
        **popen,
    )


class UdpCounter:
    """Counts VMC frames (/VMC/Ext/OK) arriving on a loopback UDP port."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            self.frames += data.count(b"/VMC/Ext/OK\x00")

    def close(self) -> int:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.frames


def _fsize_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _check_full_disk(folder: Path, out_folder: Path, how: str, preexec=None, seconds: float = 2.0) -> dict:
    replay, frames = long_replay(folder, seconds)
    vmc = UdpCounter()
    out = out_folder / "out.jsonl"
    node = _node(
        "--source",
        f"replay:{replay}",
        "--motion",
        "one_euro",
        "--out",
        f"record:{out}",
        "--out",
        f"vmc://127.0.0.1:{vmc.port}",
        "--overwrite",
        preexec=preexec,
    )
    _, stderr = node.communicate(timeout=120)
    received = vmc.close()
    from liverig.runtime.recording import read_output_recording

    try:
        kept = len(read_output_recording(out)[1])
        readable = True
    except Exception:  # noqa: BLE001 - reported
        kept, readable = 0, False
    ok = (
        node.returncode == 1
        and "output stopped" in stderr
        and "Traceback" not in stderr
        and received == frames
    )
    return {
        "fault": f"disk full ({how})",
        "ok": ok and readable,
        "exit": node.returncode,
        "live_frames": f"{received}/{frames}",
        "kept_frames": kept,
        "line": next((line for line in stderr.splitlines() if "output stopped" in line), ""),
    }


def _tmpfs(folder: Path) -> Path | None:
    """A 64 KB tmpfs, where mounting is permitted (root in a container that allows it)."""
    mount = folder / "tmpfs"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    return mount if result.returncode == 0 else None


def _check_folder_removed(folder: Path) -> dict:
    replay, frames = long_replay(folder, 6.0)
    takes = folder / "takes"
    takes.mkdir(exist_ok=True)
    out = takes / "out.jsonl"
    vmc = UdpCounter()
    node = _node(
        "--source",
        f"replay:{replay}",
        "--motion",
        "one_euro",
        "--out",
        f"record:{out}",
        "--out",
        f"vmc://127.0.0.1:{vmc.port}",
        "--overwrite",
    )
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size > 2000) and time.monotonic() < deadline:
        time.sleep(0.05)
    shutil.rmtree(takes)
    _, stderr = node.communicate(timeout=120)
    received = vmc.close()
    ok = node.returncode == 1 and "deleted" in stderr and received == frames and "Traceback" not in stderr
    return {
        "fault": "output folder removed",
        "ok": ok,
        "exit": node.returncode,
        "live_frames": f"{received}/{frames}",
    }


def _check_receivers_gone(folder: Path) -> dict:
    replay, frames = long_replay(folder, 3.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ws_port = probe.getsockname()[1]
    closed_udp = UdpCounter()
    closed_udp.close()  # its port is now closed: VMC datagrams meet ICMP port unreachable
    node = _node(
        "--source",
        f"replay:{replay}",
        "--motion",
        "one_euro",
        "--out",
        f"vmc://127.0.0.1:{closed_udp.port}",
        "--out",
        f"ws://127.0.0.1:{ws_port}",
    )
    resets = 0
    deadline = time.monotonic() + 30
    while node.poll() is None and time.monotonic() < deadline and resets < 20:
        try:
            with socket.create_connection(("127.0.0.1", ws_port), timeout=1) as sock:
                sock.sendall(_handshake_request())
                sock.recv(4096)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
                resets += 1
        except OSError:
            time.sleep(0.1)
    _, stderr = node.communicate(timeout=120)
    ok = node.returncode == 0 and "Traceback" not in stderr and resets > 0
    return {
        "fault": "receivers gone (closed VMC port, WebSocket resets)",
        "ok": ok,
        "exit": node.returncode,
        "resets": resets,
    }


def _check_camera_raising() -> dict:
    from liverig.core.config import SourceConfig
    from liverig.runtime.sources import WebcamSource

    class Raising:
        def read(self):
            raise RuntimeError("driver failure: device unplugged")

        def release(self):
            pass

    lines: list[str] = []
    source = WebcamSource(
        0, SourceConfig(reconnect_interval_s=0.05), open_camera=lambda i, c: Raising(), log=lines.append
    )
    source.start()
    time.sleep(0.5)
    alive = source._thread.is_alive()
    source.close()
    ok = alive and len(lines) == 1 and "camera lost" in lines[0]
    return {"fault": "camera read raising", "ok": ok, "lines": lines[:2]}


def _check_kills(folder: Path, kills: int, seed: int, log=print) -> dict:
    """SIGKILL at a random moment while recording BVH, output and landmark files; every file must
    read back (bvhio for the BVH, the recording readers for the rest)."""
    import bvhio

    from liverig.runtime.recording import read_landmark_recording, read_output_recording

    rng = random.Random(seed)
    replay, _ = long_replay(folder, 20.0)
    readable = 0
    problems: list[str] = []
    for k in range(kills):
        take = folder / f"kill{k}"
        take.mkdir()
        bvh, out, landmarks = take / "take.bvh", take / "out.jsonl", take / "lm.jsonl"
        node = _node(
            "--source",
            f"replay:{replay}",
            "--motion",
            "one_euro",
            "--out",
            f"bvh:{bvh}",
            "--out",
            f"record:{out}",
            "--record-landmarks",
            landmarks,
        )
        deadline = time.monotonic() + 60
        while not bvh.exists() and time.monotonic() < deadline and node.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.5))
        node.kill()
        node.communicate()
        try:
            frames = int(bvh.read_text().split("Frames:")[1].split()[0])
            bvhio.readAsHierarchy(str(bvh))
            count = len(read_output_recording(out)[1])
            read_landmark_recording(landmarks)
            readable += 1
            if frames < 1 or count < 1:
                problems.append(f"kill {k}: empty ({frames} BVH frames, {count} recorded)")
        except Exception as error:  # noqa: BLE001 - that is the finding
            problems.append(f"kill {k}: {type(error).__name__}: {str(error)[:120]}")
        shutil.rmtree(take)
    return {
        "fault": f"SIGKILL at random moments while recording x{kills}",
        "ok": readable == kills and not problems,
        "readable": f"{readable}/{kills}",
        "problems": problems[:5],
    }


def faults(kills: int, seed: int, log=print) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="liverig-harden-") as name:
        folder = Path(name)
        checks = [
            lambda: _check_full_disk(folder, folder, "RLIMIT_FSIZE 48 KB", _fsize_limit(48 * 1024)),
            lambda: _check_folder_removed(folder),
            lambda: _check_receivers_gone(folder),
            _check_camera_raising,
            lambda: _check_kills(folder, kills, seed, log),
        ]
        mount = _tmpfs(folder) if os.geteuid() == 0 else None
        if mount is not None:
            checks.insert(1, lambda: _check_full_disk(folder, mount, "64 KB tmpfs: ENOSPC", seconds=6.0))
        for check in checks:
            result = check()
            log(f"  {'ok  ' if result['ok'] else 'FAIL'} " + json.dumps(result))
            results.append(result)
        if mount is not None:
            subprocess.run(["umount", str(mount)], capture_output=True)
        else:
            log("  (a small tmpfs could not be mounted here: disk full is the RLIMIT_FSIZE check)")
    return results


# ---- flood -------------------------------------------------------------------------------------------


def _handshake_request(path: str = "/", origin: str | None = None) -> bytes:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ws_frame(opcode: int, payload: bytes, fin: bool = True, length: int | None = None) -> bytes:
    """A masked client frame; `length` may claim more than `payload` holds (a 10 MB header)."""
    length = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 else payload
    return head + mask + masked


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_handshake_request())
        await writer.drain()
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    except BaseException:  # refused, cut off or cancelled mid-handshake: the caller never gets it
        writer.close()
        raise
    return reader, writer


async def _bad_client(kind: str, port: int, stop: asyncio.Event, tally: Counter) -> None:
    """One misbehaving client, reconnecting whenever the server closes it, until `stop`."""
    rng = random.Random(hash(kind))
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await _open(port)
            tally[f"{kind} connections"] += 1
            if kind == "never-reads":
                await stop.wait()  # never reads a byte: the server's frames pile up on its side
            elif kind == "resets":
                await asyncio.sleep(rng.uniform(0.01, 0.2))
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            elif kind == "garbage":
                for _ in range(20):
                    writer.write(os.urandom(rng.randint(1, 2000)))
                    await writer.drain()
                    await asyncio.sleep(0.01)
            elif kind == "10MB":
                writer.write(ws_frame(0x2, b"", length=10 << 20))
                chunk = b"\0" * (1 << 16)
                for _ in range(160):
                    writer.write(chunk)
                    await writer.drain()
            elif kind == "ping-flood":
                ping = ws_frame(0x9, b"p" * 125)
                while not stop.is_set():
                    writer.write(ping * 64)
                    await writer.drain()
            elif kind == "message-flood":
                message = ws_frame(0x1, b'{"type":"ping","id":1}')
                while not stop.is_set():
                    writer.write(message * 64)
                    await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            tally[f"{kind} cut off"] += 1
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1)
        await asyncio.sleep(0.05)


BAD_CLIENTS = {"never-reads": 4, "resets": 3, "garbage": 3, "10MB": 3, "ping-flood": 4, "message-flood": 3}


GOOD_CLIENT = """
import asyncio, sys, time
import msgpack
from websockets.asyncio.client import connect

async def main(port):
    deadline = time.monotonic() + 60
    while True:
        try:
            client = await connect(f"ws://127.0.0.1:{port}", open_timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    async with client:
        async for raw in client:
            now = time.perf_counter()
            message = msgpack.unpackb(raw)
            if message.get("type") == "frame":
                sys.stdout.write(f"{now!r} {now - message['sent_s']!r}\\n")
                sys.stdout.flush()

try:
    asyncio.run(main(int(sys.argv[1])))
except KeyboardInterrupt:
    pass
"""


class GoodClient(threading.Thread):
    """A well-behaved client in a process of its own (so it measures the node, not the attackers'
    share of this process's interpreter lock): per frame, the delay from the node's send to arrival
    (both CLOCK_MONOTONIC on one host), reported a line per frame and collected by this thread."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.arrivals: list[tuple[float, float]] = []  # (arrival, delay s)
        self.error: str | None = None
        self._process = subprocess.Popen(
            [sys.executable, "-c", GOOD_CLIENT, str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            arrival, delay = line.split()
            self.arrivals.append((float(arrival), float(delay)))
        if self._process.wait() not in (0, -signal.SIGINT, -signal.SIGTERM):
            assert self._process.stderr is not None
            lines = self._process.stderr.read().strip().splitlines()
            self.error = lines[-1] if lines else f"exit status {self._process.returncode}"

    def window(self, start: float, end: float) -> dict:
        delays = np.array([d for t, d in self.arrivals if start <= t < end]) * 1000
        if len(delays) == 0:
            return {"fps": 0.0, "p50_ms": None, "p99_ms": None}
        return {
            "fps": round(len(delays) / (end - start), 2),
            "p50_ms": round(float(np.percentile(delays, 50)), 2),
            "p99_ms": round(float(np.percentile(delays, 99)), 2),
        }

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self.join(timeout=5)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def flood(seconds: float, log=print) -> dict:
    """The node's ws:// output with a good client: `seconds` alone, then `seconds` with 20 bad ones."""
    with tempfile.TemporaryDirectory(prefix="liverig-harden-") as name:
        folder = Path(name)
        replay, _ = long_replay(folder, 2 * seconds + 30)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        node = _node(
            "--source", f"replay:{replay}", "--motion", "one_euro", "--out", f"ws://127.0.0.1:{port}"
        )
        good = GoodClient(port)
        good.start()
        rss: list[tuple[float, float]] = []
        try:
            deadline = time.monotonic() + 60
            while len(good.arrivals) < 30 and time.monotonic() < deadline and node.poll() is None:
                time.sleep(0.1)
            if len(good.arrivals) < 30:
                raise RuntimeError(f"the node did not stream: {good.error or node.stderr.read()[-500:]}")

            def sample_until(end: float) -> None:
                while time.perf_counter() < end:
                    rss.append((time.perf_counter(), _rss_mb(node.pid)))
                    time.sleep(0.25)

            t0 = time.perf_counter()
            sample_until(t0 + seconds)
            t1 = time.perf_counter()
            tally: Counter = Counter()
            loop = asyncio.new_event_loop()
            stop = asyncio.Event()

            async def attack() -> None:
                tasks = [
                    asyncio.create_task(_bad_client(kind, port, stop, tally))
                    for kind, count in BAD_CLIENTS.items()
                    for _ in range(count)
                ]
                await asyncio.sleep(seconds)
                stop.set()
                await asyncio.wait(tasks, timeout=5)
                for task in tasks:
                    task.cancel()
                # Let the cancelled clients run their clean-up (close their sockets) before the loop goes.
                await asyncio.wait(tasks, timeout=5)

            attacker = threading.Thread(target=loop.run_until_complete, args=(attack(),), daemon=True)
            attacker.start()
            sample_until(t1 + seconds)
            t2 = time.perf_counter()
            attacker.join(timeout=20)
            if not attacker.is_alive():
                loop.close()  # else its sockets reach a later test's gc as ResourceWarnings
            alone, flooded = good.window(t0 + 0.5, t1), good.window(t1 + 0.5, t2)
            rss_alone = max(r for t, r in rss if t < t1)
            rss_flood = max(r for t, r in rss if t >= t1)
        finally:
            good.stop()
            node.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.communicate(timeout=20)
            if node.poll() is None:
                node.kill()
    result = {
        "seconds_per_phase": seconds,
        "bad_clients": sum(BAD_CLIENTS.values()),
        "alone": alone,
        "flooded": flooded,
        "rss_mb": {
            "alone_max": round(rss_alone, 1),
            "flooded_max": round(rss_flood, 1),
            "growth_pct": round(100 * (rss_flood / rss_alone - 1), 1),
        },
        "bad_client_events": dict(sorted(tally.items())),
        "targets": {
            "fps>=29.5": flooded["fps"] >= 29.5,
            "p99<=10ms": (flooded["p99_ms"] or 1e9) <= 10,
            "rss<=+10%": rss_flood <= 1.1 * rss_alone,
        },
    }
    log("  " + json.dumps(result))
    return result


# ---- command line ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liverig.harden", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short seeded run CI uses (about a minute)")
    parser.add_argument("--seed", type=int, default=20, help="seed for every random choice (default 20)")
    parser.add_argument("--inputs", type=int, help="fuzzed inputs per surface (default 10000; --quick 100)")
    parser.add_argument("--kills", type=int, help="random SIGKILLs while recording (default 100; --quick 2)")
    parser.add_argument("--flood-s", type=float, help="seconds per flood phase (default 20; --quick 4)")
    parser.add_argument("--phases", default="fuzz,faults,flood", help="comma-separated: fuzz,faults,flood")
    parser.add_argument("--surfaces", help=f"comma-separated subset of: {','.join(SURFACES)}")
    parser.add_argument(
        "--engine",
        choices=["hypothesis", "atheris"],
        default="hypothesis",
        help="fuzz with hypothesis (default) or coverage-guided with atheris (runtime/harden_atheris.py)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    inputs = args.inputs or (100 if args.quick else 10_000)
    kills = args.kills if args.kills is not None else (2 if args.quick else 100)
    seconds = args.flood_s or (4.0 if args.quick else 20.0)
    phases = args.phases.split(",")
    report: dict[str, Any] = {"seed": args.seed, "inputs_per_surface": inputs}
    failed = False
    started = time.perf_counter()
    surfaces = args.surfaces.split(",") if args.surfaces else None
    unknown = sorted(set(surfaces or []) - set(SURFACES))
    if unknown:
        parser.error(f"--surfaces: unknown {', '.join(unknown)}; expected some of {', '.join(SURFACES)}")
    results = None
    if "fuzz" in phases and args.engine == "atheris":
        from liverig.runtime import harden_atheris

        why = harden_atheris.missing()
        if why:
            print(f"fuzz (atheris): skipped: {why}")
            report["fuzz_skipped"] = why
        else:
            print(f"fuzz (atheris, coverage-guided): {inputs} inputs per surface, seed {args.seed}")
            results = harden_atheris.fuzz_atheris(inputs, args.seed, surfaces)
    elif "fuzz" in phases:
        print(f"fuzz: {inputs} inputs per surface, seed {args.seed}")
        results = fuzz(inputs, args.seed, surfaces)
    if results is not None:
        report["engine"] = args.engine
        report["fuzz"] = [
            {
                "surface": r.name,
                "inputs": r.inputs,
                "outcomes": dict(r.outcomes),
                "slowest_ms": round(r.slowest_s * 1000, 1),
                "findings": r.findings[:20],
                **({"coverage": r.coverage} if r.coverage else {}),
            }
            for r in results
        ]
        failed |= any(r.findings for r in results)
    if "faults" in phases:
        print(f"faults: {kills} kills")
        report["faults"] = faults(kills, args.seed)
        failed |= not all(f["ok"] for f in report["faults"])
    if "flood" in phases:
        print(f"flood: {seconds:g} s alone, then {seconds:g} s with {sum(BAD_CLIENTS.values())} bad clients")
        report["flood"] = flood(seconds)
        failed |= not all(report["flood"]["targets"].values())
    report["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"harden: {'FINDINGS or targets missed' if failed else 'clean'} in {report['wall_s']:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
