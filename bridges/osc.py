"""Plain OSC for TouchDesigner, Max/MSP, Pure Data and custom rigs: one address per bone.

Address space (PREFIX defaults to `/liverig`), sent every frame in this order:

    PREFIX/frame          i index, f time_s, f latency_ms, i tracking
                          (latency: capture to retarget, this frame; tracking: 1 ok, 0 lost)
    PREFIX/root           f px py pz, f qx qy qz qw       rig root transform
    PREFIX/bone/{Name}    f px py pz, f qx qy qz qw       one per bone, LOCAL pose (relative to parent)
    PREFIX/blend/{name}   f value                         one per blendshape, usually 0..1
    PREFIX/contact        f left, f right                 feet on the ground, 0..1 (only when the
                                                          motion method estimates it: stcnn)

Bone and blendshape names are the rig's own (e.g. Unity HumanBodyBones: `/liverig/bone/LeftUpperArm`,
ARKit: `/liverig/blend/eyeBlinkLeft`), with any character OSC reserves in addresses (space # * , / ?
[ ] { }) replaced by `_`. Positions are in rig units, quaternions x y z w in the rig's axes.
Datagrams are OSC bundles (split to fit the MTU, see `bridges.oscpack`) or single messages.
"""

from __future__ import annotations

from functools import lru_cache

from liverig.bridges.oscpack import UdpTransport, osc_message, osc_string, pack_datagrams, write_float
from liverig.core.types import Pose, RigFrame

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_PREFIX = "/liverig"

_RESERVED = str.maketrans({c: "_" for c in " #*,/?[]{}"})


@lru_cache(maxsize=4096)
def address_part(name: str) -> str:
    """A rig name made safe to use as one OSC address part."""
    return name.translate(_RESERVED) or "_"


@lru_cache(maxsize=8192)
def _head(address: str, typetags: str) -> bytes:
    return osc_string(address) + osc_string("," + typetags)


def osc_messages(rig: RigFrame, *, prefix: str = DEFAULT_PREFIX) -> list[bytes]:
    """The frame's messages in the documented address space."""
    messages = [
        osc_message(
            f"{prefix}/frame",
            "iffi",
            (int(rig.index), float(rig.time_s), float(rig.timing.total_ms()), 1 if rig.tracking else 0),
        ),
        osc_message(
            f"{prefix}/root",
            "fffffff",
            (*[float(v) for v in rig.root_position], *[float(v) for v in rig.root_rotation]),
        ),
    ]
    positions = rig.local_positions.tolist()
    rotations = rig.local_rotations.tolist()
    for name, position, rotation in zip(rig.bone_names, positions, rotations, strict=True):
        head = _head(f"{prefix}/bone/{address_part(name)}", "fffffff")
        messages.append(
            b"".join((head, *[write_float(v) for v in position], *[write_float(v) for v in rotation]))
        )
    for name, value in rig.blendshapes.items():
        messages.append(_head(f"{prefix}/blend/{address_part(name)}", "f") + write_float(float(value)))
    if rig.foot_contact is not None:
        left, right = (float(v) for v in rig.foot_contact)
        messages.append(_head(f"{prefix}/contact", "ff") + write_float(left) + write_float(right))
    return messages


def encode_osc(
    rig: RigFrame,
    *,
    prefix: str = DEFAULT_PREFIX,
    bundle: bool = True,
    max_datagram_bytes: int = 1472,
) -> list[bytes]:
    """One frame as UDP payloads (bundles of at most `max_datagram_bytes`, or one message each)."""
    return pack_datagrams(
        osc_messages(rig, prefix=prefix), bundle=bundle, max_datagram_bytes=max_datagram_bytes
    )


class OscSender:
    """`osc://HOST:PORT`: the address space above, fire-and-forget UDP, one frame per `send`."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        prefix: str = DEFAULT_PREFIX,
        bundle: bool = True,
        max_datagram_bytes: int = 1472,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"OSC prefix must start with '/' and not end with one: {prefix!r}")
        self.prefix = prefix
        self.bundle = bundle
        self.max_datagram_bytes = max_datagram_bytes
        self.name = f"osc://[{host}]:{port}" if ":" in host else f"osc://{host}:{port}"
        self.transport = UdpTransport(self.name, host, port)

    def send(self, pose: Pose | None, rig: RigFrame) -> None:
        self.transport.send_datagrams(
            encode_osc(
                rig, prefix=self.prefix, bundle=self.bundle, max_datagram_bytes=self.max_datagram_bytes
            )
        )

    def close(self) -> None:
        self.transport.close()
