"""VMC Performer: encoder vs python-osc builders, MTU packing, and liblo's oscdump on loopback UDP."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from liverig.bridges.errors import BridgeError
from liverig.bridges.oscpack import osc_bundle, osc_message, pack_datagrams
from liverig.bridges.vmc import VmcSender, encode_vmc, vmc_messages
from liverig.core.config import VmcConfig
from tests.bridges_support import (
    ARKIT,
    BONE_NAMES,
    Capture,
    free_udp_port,
    make_rig,
    needs_oscdump,
    unpack,
)

# ---- pure encoder -----------------------------------------------------------------------------------


def test_messages_are_byte_identical_to_python_osc_builders():
    rig = make_rig(3)
    messages = vmc_messages(rig, 1.25)
    expected = []
    for address, tags, args in [
        ("/VMC/Ext/OK", "iiii", [1, 3, 0, 1]),
        ("/VMC/Ext/T", "f", [1.25]),
        ("/VMC/Ext/Root/Pos", "sfffffff", ["root", *rig.root_position, *rig.root_rotation]),
    ]:
        builder = OscMessageBuilder(address)
        for tag, arg in zip(tags, args, strict=True):
            builder.add_arg(float(arg) if tag == "f" else arg, tag)
        expected.append(builder.build().dgram)
    for i, name in enumerate(rig.bone_names):
        builder = OscMessageBuilder("/VMC/Ext/Bone/Pos")
        builder.add_arg(name, "s")
        for v in (*rig.local_positions[i], *rig.local_rotations[i]):
            builder.add_arg(float(v), "f")
        expected.append(builder.build().dgram)
    for name, value in rig.blendshapes.items():
        builder = OscMessageBuilder("/VMC/Ext/Blend/Val")
        builder.add_arg(name, "s")
        builder.add_arg(value, "f")
        expected.append(builder.build().dgram)
    expected.append(OscMessageBuilder("/VMC/Ext/Blend/Apply").build().dgram)
    assert messages == expected

    bundle_builder = OscBundleBuilder(IMMEDIATELY)
    for m in expected[:5]:
        bundle_builder.add_content(OscMessage(m))
    assert osc_bundle(messages[:5]) == bundle_builder.build().dgram


@pytest.mark.parametrize("limit", [256, 512, 1000, 1472, 9000])
def test_bundles_fit_the_limit_and_keep_message_order(limit):
    rig = make_rig(1)
    messages = vmc_messages(rig, 0.5)
    datagrams = encode_vmc(rig, 0.5, max_datagram_bytes=limit)
    assert all(len(d) <= limit for d in datagrams)
    assert all(OscBundle.dgram_is_bundle(d) for d in datagrams)
    decoded = [m for d in datagrams for m in unpack(d)]
    assert [m.dgram for m in decoded] == messages
    if limit == 1472:
        assert len(datagrams) > 1  # 55 bones + 52 blendshapes do not fit one MTU
    if limit == 9000:
        assert len(datagrams) == 1
    # Blend/Apply is the last message of the last datagram, after every Blend/Val
    assert decoded[-1].address == "/VMC/Ext/Blend/Apply"
    assert unpack(datagrams[-1])[-1].address == "/VMC/Ext/Blend/Apply"


def test_greedy_packing_fills_each_bundle():
    messages = [bytes(100)] * 40
    datagrams = pack_datagrams(messages, bundle=True, max_datagram_bytes=1472)
    # 16-byte header + 14 * (4 + 100) = 1472 exactly
    assert [len(d) for d in datagrams] == [1472, 1472, 16 + 12 * 104]


def test_oversized_single_message_goes_out_alone():
    big = osc_message("/x", "s", ("n" * 400,))
    small = osc_message("/y", "f", (1.0,))
    datagrams = pack_datagrams([small, big, small], bundle=True, max_datagram_bytes=256)
    assert datagrams[1] == big
    assert [m.address for d in datagrams for m in unpack(d)] == ["/y", "/x", "/y"]


def test_no_bundle_mode_is_one_message_per_datagram():
    rig = make_rig(2)
    datagrams = encode_vmc(rig, 0.5, bundle=False)
    assert datagrams == vmc_messages(rig, 0.5)
    assert not any(OscBundle.dgram_is_bundle(d) for d in datagrams)
    assert len(datagrams) == 3 + 55 + 52 + 1


def test_tracking_lost_sets_tracking_status_zero():
    ok = OscMessage(vmc_messages(make_rig(0, tracking=False), 0.0)[0])
    assert ok.address == "/VMC/Ext/OK" and ok.params == [1, 3, 0, 0]


# ---- transport on real loopback sockets ------------------------------------------------------------


def _check_vmc_stream(messages, rigs):
    """Every frame's messages, in order, with the right types and values (oscdump prints %f)."""
    per_frame = 3 + len(BONE_NAMES) + len(ARKIT) + 1
    assert len(messages) == per_frame * len(rigs)
    for f, rig in enumerate(rigs):
        frame = messages[f * per_frame : (f + 1) * per_frame]
        assert frame[0] == ("/VMC/Ext/OK", "iiii", ["1", "3", "0", "1"])
        assert frame[1][:2] == ("/VMC/Ext/T", "f") and float(frame[1][2][0]) == pytest.approx(
            rig.time_s, abs=1e-5
        )
        address, types, args = frame[2]
        assert (address, types, args[0]) == ("/VMC/Ext/Root/Pos", "sfffffff", "root")
        expected_root = np.concatenate([rig.root_position, rig.root_rotation])
        np.testing.assert_allclose([float(a) for a in args[1:]], expected_root, atol=2e-6)
        bones = frame[3 : 3 + len(BONE_NAMES)]
        assert [b[0] for b in bones] == ["/VMC/Ext/Bone/Pos"] * len(BONE_NAMES)
        assert [b[1] for b in bones] == ["sfffffff"] * len(BONE_NAMES)
        assert [b[2][0] for b in bones] == BONE_NAMES
        values = np.array([[float(a) for a in b[2][1:]] for b in bones])
        np.testing.assert_allclose(values[:, :3], rig.local_positions, atol=2e-6)
        np.testing.assert_allclose(values[:, 3:], rig.local_rotations, atol=2e-6)
        blends = frame[3 + len(BONE_NAMES) : -1]
        assert [(b[0], b[1], b[2][0]) for b in blends] == [("/VMC/Ext/Blend/Val", "sf", n) for n in ARKIT]
        np.testing.assert_allclose(
            [float(b[2][1]) for b in blends], list(rig.blendshapes.values()), atol=2e-6
        )
        assert frame[-1] == ("/VMC/Ext/Blend/Apply", "", [])


@needs_oscdump
@pytest.mark.parametrize("bundle", [True, False])
def test_oscdump_parses_every_vmc_message(oscdump, bundle):
    sender = VmcSender("127.0.0.1", oscdump.port, VmcConfig(bundle=bundle))
    rigs = [make_rig(i) for i in range(5)]
    try:
        for rig in rigs:
            sender.send(None, rig)
            time.sleep(0.02)  # a real node sends at its frame rate; don't overflow oscdump's buffer
    finally:
        sender.close()
    per_frame = 3 + len(BONE_NAMES) + len(ARKIT) + 1
    _check_vmc_stream(oscdump.messages(per_frame * len(rigs)), rigs)
    assert sender.transport.datagrams_dropped == 0 and sender.transport.errors == 0


@pytest.mark.parametrize("bundle", [True, False])
def test_datagrams_on_the_wire_fit_the_mtu(bundle):
    capture = Capture()
    sender = VmcSender("127.0.0.1", capture.port, VmcConfig(bundle=bundle, max_datagram_bytes=1472))
    try:
        datagrams = []
        for i in range(3):
            sender.send(None, make_rig(i))
            datagrams += capture.drain()  # one frame at a time: 111 datagrams fill a default rcvbuf
    finally:
        sender.close()
        capture.sock.close()
    assert datagrams and all(len(d) <= 1472 for d in datagrams)
    messages = [m for d in datagrams for m in unpack(d)]
    assert len(messages) == 3 * (3 + 55 + 52 + 1)
    if bundle:
        assert all(OscBundle.dgram_is_bundle(d) for d in datagrams)
        assert len(datagrams) < len(messages) / 10
    else:
        assert len(datagrams) == len(messages)
        assert not any(OscBundle.dgram_is_bundle(d) for d in datagrams)


def test_receiver_not_running_is_not_an_error_and_later_receiver_gets_frames():
    port = free_udp_port()
    sender = VmcSender("127.0.0.1", port, VmcConfig())
    try:
        for i in range(10):
            sender.send(None, make_rig(i))  # ICMP port unreachable comes back: must not raise
            time.sleep(0.005)
        assert sender.transport.refused > 0  # Linux reports it on a connected UDP socket
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", port))
        receiver.settimeout(2.0)
        sender.send(None, make_rig(10))
        first = unpack(receiver.recv(65535))
        assert first[0].address == "/VMC/Ext/OK"  # the frame right after the refusals arrives whole
        receiver.close()
    finally:
        sender.close()


def test_unresolvable_host_is_a_one_line_bridge_error():
    with pytest.raises(BridgeError) as info:
        VmcSender("no-such-host.invalid", 39539)
    message = str(info.value)
    assert "\n" not in message and "no-such-host.invalid" in message and message.startswith("vmc://")


def test_ipv6_loopback():
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        receiver.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    receiver.settimeout(2.0)
    sender = VmcSender("::1", receiver.getsockname()[1])
    try:
        sender.send(None, make_rig(0))
        assert unpack(receiver.recv(65535))[0].address == "/VMC/Ext/OK"
        assert sender.name == f"vmc://[::1]:{receiver.getsockname()[1]}"
    finally:
        sender.close()
        receiver.close()
