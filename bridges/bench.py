"""How much of a frame the outputs cost:
`python -m liverig.bridges.bench [--seconds 5] [--clients 32] [--fps 60]`.

    python -m liverig.bridges.bench --flood 20 [--seconds 20] [--fps 30]     # part 3 only

1. Per bridge, for a 55-bone Unity humanoid with 52 ARKit blendshapes: encode time and encode+send
   time per frame (median, p99). UDP goes to a local socket that is drained outside the timing.
2. WebSocket fan-out: the server in this process, N clients (one asyncio loop) in a separate
   process so they do not share the server's GIL, frames at FPS for SECONDS. Reported: frames
   delivered per client, delivery delay (client receive time minus the frame's `sent_s`, both
   CLOCK_MONOTONIC, p50/p99), frames dropped by outboxes, and the node-side cost of `send()`: wall
   time, and the calling thread's own CPU time (the difference is time it waited: for the
   interpreter lock, or for a CPU on a busy machine).
3. `--flood N`: one good client (its own process) alone for SECONDS, then with N flooding clients
   (another process: half send pings, half ping messages, as fast as the socket takes them, and
   reconnect as soon as they are cut off): the good client's delivery delay in each phase, and
   `send()`'s cost. `python -m liverig.runtime.harden`'s flood runs its attackers in the good client's own
   process, so there the good client also waits for the attackers' interpreter lock; here it does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.bridges.bvh import BvhWriter
from liverig.bridges.osc import OscSender, encode_osc
from liverig.bridges.vmc import VmcSender, encode_vmc
from liverig.bridges.ws import WebSocketServer, encode_message, frame_message
from liverig.core.config import VmcConfig, WebSocketConfig
from liverig.core.types import RigFrame, Timing

_BODY = (
    "Hips Spine Chest UpperChest Neck Head LeftEye RightEye Jaw LeftShoulder LeftUpperArm LeftLowerArm "
    "LeftHand RightShoulder RightUpperArm RightLowerArm RightHand LeftUpperLeg LeftLowerLeg LeftFoot "
    "LeftToes RightUpperLeg RightLowerLeg RightFoot RightToes"
).split()
_FINGERS = [
    f"{side}{finger}{segment}"
    for side in ("Left", "Right")
    for finger in ("Thumb", "Index", "Middle", "Ring", "Little")
    for segment in ("Proximal", "Intermediate", "Distal")
]
BONES = _BODY + _FINGERS  # 55
BLENDSHAPES = [f"arkitShape{i:02d}" for i in range(52)]


def bench_rig(index: int, rng: np.random.Generator) -> RigFrame:
    """A 55-bone rig frame with random rotations and a simple chain of parents."""
    count = len(BONES)
    timing = Timing(capture=time.perf_counter())
    timing.stages = {"perception": timing.capture + 0.02, "retarget": timing.capture + 0.021}
    return RigFrame(
        index=index,
        time_s=index / 60.0,
        timing=timing,
        rig="bench",
        bone_names=list(BONES),
        parents=[-1] + [max(0, i - 1 - i % 4) for i in range(1, count)],
        local_rotations=Rotation.random(count, random_state=rng).as_quat(),
        local_positions=rng.normal(scale=0.1, size=(count, 3)),
        root_position=rng.normal(size=3),
        root_rotation=Rotation.random(random_state=rng).as_quat(),
        blendshapes={
            name: float(v) for name, v in zip(BLENDSHAPES, rng.random(len(BLENDSHAPES)), strict=True)
        },
    )


def _stats_ms(samples: list[float]) -> str:
    values = np.asarray(samples) * 1000.0
    return f"median {np.median(values):7.3f} ms   p99 {np.percentile(values, 99):7.3f} ms"


def _time(
    call: Callable[[int], object], frames: int, after: Callable[[], object] | None = None
) -> list[float]:
    samples = []
    for i in range(frames):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
        if after is not None:
            after()
    return samples


def per_bridge(frames: int = 1000, quiet: bool = False) -> dict[str, dict[str, list[float]]]:
    """Seconds per frame for each bridge: {name: {"encode": [...], "encode+send": [...]}}."""
    say = (lambda *a: None) if quiet else print
    results: dict[str, dict[str, list[float]]] = {}
    rng = np.random.default_rng(0)
    rigs = [bench_rig(i, rng) for i in range(60)]
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    port = sink.getsockname()[1]

    def drain() -> None:
        try:
            while True:
                sink.recv(65535)
        except BlockingIOError:
            pass

    say(f"Per frame, {len(BONES)} bones + {len(BLENDSHAPES)} blendshapes, {frames} frames:")
    rows: list[tuple[str, Callable[[int], object], Callable[[int], object] | None]] = []
    vmc = VmcSender("127.0.0.1", port, VmcConfig())
    vmc_plain = VmcSender("127.0.0.1", port, VmcConfig(bundle=False))
    osc = OscSender("127.0.0.1", port)
    rows.append(
        ("vmc (bundles)", lambda i: encode_vmc(rigs[i % 60], 0.0), lambda i: vmc.send(None, rigs[i % 60]))
    )
    rows.append(
        (
            "vmc (no bundles)",
            lambda i: encode_vmc(rigs[i % 60], 0.0, bundle=False),
            lambda i: vmc_plain.send(None, rigs[i % 60]),
        )
    )
    rows.append(("osc (bundles)", lambda i: encode_osc(rigs[i % 60]), lambda i: osc.send(None, rigs[i % 60])))
    for fmt in ("msgpack", "json"):
        rows.append(
            (f"ws frame ({fmt})", lambda i, f=fmt: encode_message(frame_message(rigs[i % 60], f), f), None)
        )
    with tempfile.TemporaryDirectory() as directory:
        bvh = BvhWriter(os.path.join(directory, "bench.bvh"), fps=60.0)
        bvh.send(None, rigs[0])
        rows.append(("bvh", lambda i: bvh._motion_line(rigs[i % 60]), lambda i: bvh.send(None, rigs[i % 60])))
        for name, encode, send in rows:
            _time(encode, 50)  # warm caches
            results[name] = {"encode": _time(encode, frames)}
            line = f"  {name:18s} encode       {_stats_ms(results[name]['encode'])}"
            if send is not None:
                _time(send, 50, drain)
                results[name]["encode+send"] = _time(send, frames, drain)
                line += f"\n  {'':18s} encode+send  {_stats_ms(results[name]['encode+send'])}"
            say(line)
        bvh.close()
    sizes = [len(d) for d in encode_vmc(rigs[0], 0.0)]
    say(f"  vmc datagrams per frame: {len(sizes)} bundles, largest {max(sizes)} B, total {sum(sizes)} B")
    say(
        f"  ws frame size: msgpack {len(encode_message(frame_message(rigs[0], 'msgpack'), 'msgpack'))} B, "
        f"json {len(encode_message(frame_message(rigs[0], 'json'), 'json'))} B"
    )
    for sender in (vmc, vmc_plain, osc):
        sender.close()
    sink.close()
    return results


# ---- WebSocket fan-out ----------------------------------------------------------------------------


async def _clients_main(url: str, count: int) -> None:
    """Child process: `count` clients that read everything until the server goes away."""
    import msgpack
    from websockets.asyncio.client import connect

    async def one(k: int) -> dict:
        delays: list[float] = []
        arrivals: list[float] = []
        frames = 0
        async with connect(url, proxy=None, max_size=None, open_timeout=30) as ws:
            try:
                async for raw in ws:
                    now = time.perf_counter()
                    message = msgpack.unpackb(raw)
                    if message.get("type") == "frame":
                        frames += 1
                        delays.append(now - message["sent_s"])
                        arrivals.append(now)
            except Exception:  # noqa: BLE001 - the server closing is how the run ends
                pass
        return {"frames": frames, "delays": delays, "arrivals": arrivals}

    results = await asyncio.gather(*(one(k) for k in range(count)))
    json.dump(results, sys.stdout)


def _connect_clients(server: WebSocketServer, clients: int) -> subprocess.Popen:
    url = f"ws://127.0.0.1:{server.port}/"
    child = subprocess.Popen(
        [sys.executable, "-m", "liverig.bridges.bench", "--clients-only", url, str(clients)],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(server.clients()) < clients:
        if time.monotonic() > deadline or child.poll() is not None:
            server.close()
            raise SystemExit("bench: the clients did not connect")
        time.sleep(0.01)
    return child


def _feed(server: WebSocketServer, seconds: float, fps: float, first: int = 0) -> tuple[list, list]:
    """Send frames at `fps` for `seconds`, as the node's loop does: send() wall and thread CPU times."""
    rng = np.random.default_rng(1)
    rigs = [bench_rig(i, rng) for i in range(60)]
    wall, cpu = [], []
    start = time.perf_counter()
    for i in range(int(seconds * fps)):
        target = start + i / fps
        while (now := time.perf_counter()) < target:
            time.sleep(min(0.002, target - now))
        rig = rigs[i % 60]
        rig = RigFrame(**{**vars(rig), "index": first + i})  # a new frame each time, as the node makes
        c0, t0 = time.thread_time(), time.perf_counter()
        server.send(None, rig)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return wall, cpu


def fan_out(seconds: float, clients: int, fps: float, quiet: bool = False) -> dict:
    """Frames delivered per client, delivery delays (ms) and the node-side send() cost (s)."""
    say = (lambda *a: None) if quiet else print
    server = WebSocketServer("127.0.0.1", 0, WebSocketConfig(), fps=fps)
    child = _connect_clients(server, clients)
    total = int(seconds * fps)
    send_times, send_cpu = _feed(server, seconds, fps)
    time.sleep(0.5)  # let the last frames arrive
    dropped = {c.id: c.frames_dropped for c in server.clients()}
    relay_dropped = getattr(server, "handoff_dropped", 0)  # (older servers had no relay)
    server.close()
    results = json.loads(child.communicate(timeout=60)[0])
    delivered = [r["frames"] for r in results]
    delays = np.concatenate([r["delays"] for r in results]) * 1000.0
    say(
        f"\nWebSocket fan-out: {clients} clients (separate process), {fps:g} Hz for {seconds:g} s"
        f" = {total} frames:"
    )
    say(f"  frames delivered per client: min {min(delivered)}  max {max(delivered)}  (of {total})")
    say(
        f"  delivery delay: p50 {np.percentile(delays, 50):.2f} ms   p99 {np.percentile(delays, 99):.2f} ms"
        f"   max {delays.max():.2f} ms"
    )
    say(f"  frames dropped by outboxes (all clients): {sum(dropped.values())}; by the relay: {relay_dropped}")
    say(f"  node-side send() (hand-over), wall: {_stats_ms(send_times)}")
    say(f"  node-side send(), its thread's CPU: {_stats_ms(send_cpu)}")
    return {
        "frames": total,
        "delivered": delivered,
        "delays_ms": delays.tolist(),
        "dropped": sum(dropped.values()),
        "send_s": send_times,
        "send_cpu_s": send_cpu,
    }


# ---- flood ------------------------------------------------------------------------------------------


async def _flood_main(url: str, count: int, seconds: float) -> None:
    """Child process: `count` clients flooding the server (pings, or ping messages) for `seconds`,
    each reconnecting 50 ms after it is cut off. Prints how many connections were made."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.uri import parse_uri

    end = time.monotonic() + seconds
    connections = 0

    async def one(k: int) -> None:
        nonlocal connections
        ping = k % 2 == 0
        opcode, payload = (Opcode.PING, b"p" * 125) if ping else (Opcode.TEXT, b'{"type":"ping","id":1}')
        port = int(urlsplit(url).port or 80)
        while time.monotonic() < end:
            writer = None
            try:
                protocol = ClientProtocol(parse_uri(url))
                protocol.send_request(protocol.connect())
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"".join(protocol.data_to_send()))
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                connections += 1
                burst = Frame(opcode, payload).serialize(mask=True) * 64
                while time.monotonic() < end:
                    writer.write(burst)
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                pass  # cut off
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(0.05)

    await asyncio.gather(*(one(k) for k in range(count)))
    print(connections)


def flood(seconds: float, flooders: int, fps: float, quiet: bool = False) -> dict:
    """The good client's delivery delay (ms) alone, then with `flooders`; send()'s cost in each."""
    say = (lambda *a: None) if quiet else print
    server = WebSocketServer("127.0.0.1", 0, WebSocketConfig(), fps=fps)
    good = _connect_clients(server, 1)
    t0 = time.perf_counter()
    alone_wall, alone_cpu = _feed(server, seconds, fps)
    t1 = time.perf_counter()
    attackers = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "liverig.bridges.bench",
            "--flood-only",
            f"ws://127.0.0.1:{server.port}/",
            str(flooders),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    flood_wall, flood_cpu = _feed(server, seconds, fps, first=int(seconds * fps))
    t2 = time.perf_counter()
    connections = int(attackers.communicate(timeout=60)[0].strip() or 0)
    time.sleep(0.5)
    cut_off = server.refused["cut off"]
    server.close()
    result = json.loads(good.communicate(timeout=60)[0])[0]
    pairs = list(zip(result["arrivals"], result["delays"], strict=True))
    phases = {}
    for name, start, end, wall, cpu in (
        ("alone", t0 + 0.5, t1, alone_wall, alone_cpu),
        ("flooded", t1 + 0.5, t2, flood_wall, flood_cpu),
    ):
        delays = np.array([d for t, d in pairs if start <= t < end]) * 1000.0
        phases[name] = {
            "fps": round(len(delays) / (end - start), 2),
            "p50_ms": round(float(np.percentile(delays, 50)), 2) if len(delays) else None,
            "p99_ms": round(float(np.percentile(delays, 99)), 2) if len(delays) else None,
            "max_ms": round(float(delays.max()), 2) if len(delays) else None,
            "send_s": wall,
            "send_cpu_s": cpu,
        }
    say(
        f"\nWebSocket flood: 1 good client, {fps:g} Hz, {seconds:g} s alone then {seconds:g} s with "
        f"{flooders} flooding clients (another process; {connections} connections, "
        f"{cut_off} cut off):"
    )
    for name, phase in phases.items():
        say(
            f"  {name:8s} good client {phase['fps']:.2f} fps, delay p50 {phase['p50_ms']} ms  "
            f"p99 {phase['p99_ms']} ms  max {phase['max_ms']} ms"
        )
        say(f"  {'':8s} send() wall {_stats_ms(phase['send_s'])}")
        say(f"  {'':8s} send() CPU  {_stats_ms(phase['send_cpu_s'])}")
    return {"phases": phases, "connections": connections, "cut_off": cut_off}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.bridges.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--fps", type=float, default=60.0)
    parser.add_argument("--frames", type=int, default=1000, help="frames per bridge in part 1")
    parser.add_argument("--flood", type=int, metavar="N", help="only part 3, with N flooding clients")
    parser.add_argument("--clients-only", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--flood-only", nargs=3, metavar=("URL", "N", "S"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients_only:
        asyncio.run(_clients_main(args.clients_only[0], int(args.clients_only[1])))
        return
    if args.flood_only:
        url, count, seconds = args.flood_only
        asyncio.run(_flood_main(url, int(count), float(seconds)))
        return
    if args.flood is not None:
        flood(args.seconds, args.flood, args.fps)
        return
    per_bridge(args.frames)
    fan_out(args.seconds, args.clients, args.fps)


if __name__ == "__main__":
    main()
