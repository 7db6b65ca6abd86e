"""VMC protocol Performer: every bone, every frame, to a Marionette (VSeeFace, Warudo, VNyan, EVMC4U...).

Protocol: OSC over one-way UDP (VirtualMotionCaptureProtocol 3.x). Per frame, in this order:

    /VMC/Ext/OK          i loaded=1, i calibState=3, i calibMode=0, i trackingStatus (1 ok, 0 lost)
    /VMC/Ext/T           f time (sender-relative seconds: the frame's media time)
    /VMC/Ext/Root/Pos    s "root", f px py pz, f qx qy qz qw
    /VMC/Ext/Bone/Pos    s name, f px py pz, f qx qy qz qw      (one per bone, LOCAL pose)
    /VMC/Ext/Blend/Val   s name, f value                         (one per blendshape)
    /VMC/Ext/Blend/Apply                                         (after every Blend/Val)

Values are sent as the RigFrame holds them, so VMC needs a Unity humanoid rig (HumanBodyBones
names, left-handed, Y-up, metres, identity rest rotations, quaternions x y z w); the node retargets
to vrm0 for VMC when `retarget.rig` is another kind of rig (an Unreal or Mixamo skeleton, a user's
model file: `bridges.outputs.rig_requirement`). `encode_vmc` is pure; `VmcSender` is the transport.
"""

from __future__ import annotations

from liverig.bridges.oscpack import UdpTransport, osc_message, osc_string, pack_datagrams, write_float
from liverig.core.config import VmcConfig
from liverig.core.types import Pose, RigFrame

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 39539  # where Marionettes listen

_BONE_HEAD = osc_string("/VMC/Ext/Bone/Pos") + osc_string(",sfffffff")
_BLEND_HEAD = osc_string("/VMC/Ext/Blend/Val") + osc_string(",sf")
_BLEND_APPLY = osc_message("/VMC/Ext/Blend/Apply", "")


def _pose_message(head: bytes, name: str, position: list[float], rotation: list[float]) -> bytes:
    return b"".join(
        (head, osc_string(name), *[write_float(v) for v in position], *[write_float(v) for v in rotation])
    )


def vmc_messages(rig: RigFrame, time_s: float) -> list[bytes]:
    """The frame's VMC messages, in protocol order (see the module docstring)."""
    messages = [
        osc_message("/VMC/Ext/OK", "iiii", (1, 3, 0, 1 if rig.tracking else 0)),
        osc_message("/VMC/Ext/T", "f", (float(time_s),)),
        osc_message(
            "/VMC/Ext/Root/Pos",
            "sfffffff",
            ("root", *[float(v) for v in rig.root_position], *[float(v) for v in rig.root_rotation]),
        ),
    ]
    positions = rig.local_positions.tolist()
    rotations = rig.local_rotations.tolist()
    for name, position, rotation in zip(rig.bone_names, positions, rotations, strict=True):
        messages.append(_pose_message(_BONE_HEAD, name, position, rotation))
    for name, value in rig.blendshapes.items():
        messages.append(_BLEND_HEAD + osc_string(name) + write_float(float(value)))
    messages.append(_BLEND_APPLY)
    return messages


def encode_vmc(
    rig: RigFrame, time_s: float, *, bundle: bool = True, max_datagram_bytes: int = 1472
) -> list[bytes]:
    """One frame as UDP payloads: bundles of at most `max_datagram_bytes`, or one message each."""
    return pack_datagrams(vmc_messages(rig, time_s), bundle=bundle, max_datagram_bytes=max_datagram_bytes)


class VmcSender:
    """`vmc://HOST:PORT`: one VMC frame per `send`, fire-and-forget UDP.

    A Marionette that is not running (yet) costs nothing: UDP has no connection to lose.
    """

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, config: VmcConfig | None = None
    ) -> None:
        self.config = config or VmcConfig()
        self.name = f"vmc://{_netloc(host, port)}"
        self.transport = UdpTransport(self.name, host, port)

    def send(self, pose: Pose | None, rig: RigFrame) -> None:
        self.transport.send_datagrams(
            encode_vmc(
                rig,
                rig.time_s,
                bundle=self.config.bundle,
                max_datagram_bytes=self.config.max_datagram_bytes,
            )
        )

    def close(self) -> None:
        self.transport.close()


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
