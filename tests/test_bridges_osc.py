"""Plain OSC bridge: the documented address space, checked with liblo's oscdump and a plain UDP socket."""

from __future__ import annotations

import time

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle

from liverig.bridges.osc import OscSender, address_part, encode_osc, osc_messages
from tests.bridges_support import (
    ARKIT,
    BONE_NAMES,
    Capture,
    make_rig,
    needs_oscdump,
    unpack,
)

PER_FRAME = 2 + len(BONE_NAMES) + len(ARKIT) + 1  # + the feet's contact


def test_address_space():
    rig = make_rig(7)
    messages = [m for d in encode_osc(rig, bundle=False) for m in unpack(d)]
    assert [m.address for m in messages] == (
        ["/liverig/frame", "/liverig/root"]
        + [f"/liverig/bone/{n}" for n in BONE_NAMES]
        + [f"/liverig/blend/{n}" for n in ARKIT]
        + ["/liverig/contact"]
    )
    np.testing.assert_allclose(messages[-1].params, rig.foot_contact, atol=1e-6)
    no_contact = [m for d in encode_osc(make_rig(7, contact=False)) for m in unpack(d)]
    assert "/liverig/contact" not in [m.address for m in no_contact]  # nothing to say: nothing sent
    frame = messages[0].params
    assert frame[0] == 7 and frame[1] == pytest.approx(rig.time_s) and frame[3] == 1
    assert frame[2] == pytest.approx(rig.timing.total_ms(), abs=1e-3)
    np.testing.assert_allclose(
        messages[2].params, [*rig.local_positions[0], *rig.local_rotations[0]], atol=1e-6
    )


def test_reserved_characters_in_names_are_replaced():
    assert address_part("Left Hand/{1}") == "Left_Hand__1_"
    rig = make_rig(0, blendshapes=0)
    rig.bone_names[0] = "Hips #1"
    rig.blendshapes = {"a*b": 0.5}
    addresses = [m.address for d in encode_osc(rig) for m in unpack(d)]
    assert "/liverig/bone/Hips__1" in addresses and "/liverig/blend/a_b" in addresses


def test_custom_prefix():
    messages = osc_messages(make_rig(0), prefix="/avatar/1")
    assert all(m.startswith(b"/avatar/1/") for m in messages)


@needs_oscdump
@pytest.mark.parametrize("bundle", [True, False])
def test_oscdump_parses_every_message(oscdump, bundle):
    sender = OscSender("127.0.0.1", oscdump.port, bundle=bundle)
    rigs = [make_rig(i) for i in range(4)]
    try:
        for rig in rigs:
            sender.send(None, rig)
            time.sleep(0.02)
    finally:
        sender.close()
    messages = oscdump.messages(PER_FRAME * len(rigs))
    assert len(messages) == PER_FRAME * len(rigs)
    for f, rig in enumerate(rigs):
        frame = messages[f * PER_FRAME : (f + 1) * PER_FRAME]
        address, types, args = frame[0]
        assert (address, types, args[0], args[3]) == ("/liverig/frame", "iffi", str(rig.index), "1")
        assert frame[1][:2] == ("/liverig/root", "fffffff")
        np.testing.assert_allclose(
            [float(a) for a in frame[1][2]], [*rig.root_position, *rig.root_rotation], atol=2e-6
        )
        bones = frame[2 : 2 + len(BONE_NAMES)]
        assert [b[0] for b in bones] == [f"/liverig/bone/{n}" for n in BONE_NAMES]
        assert all(b[1] == "fffffff" for b in bones)
        values = np.array([[float(a) for a in b[2]] for b in bones])
        np.testing.assert_allclose(values, np.hstack([rig.local_positions, rig.local_rotations]), atol=2e-6)
        blends = frame[2 + len(BONE_NAMES) : -1]
        assert [(b[0], b[1]) for b in blends] == [(f"/liverig/blend/{n}", "f") for n in ARKIT]
        np.testing.assert_allclose(
            [float(b[2][0]) for b in blends], list(rig.blendshapes.values()), atol=2e-6
        )
        assert frame[-1][:2] == ("/liverig/contact", "ff")
        np.testing.assert_allclose([float(a) for a in frame[-1][2]], rig.foot_contact, atol=2e-6)


def test_bundles_on_the_wire_fit_the_limit():
    capture = Capture()
    sender = OscSender("127.0.0.1", capture.port, max_datagram_bytes=512)
    try:
        sender.send(None, make_rig(0))
        datagrams = capture.drain()
    finally:
        sender.close()
        capture.sock.close()
    assert all(len(d) <= 512 and OscBundle.dgram_is_bundle(d) for d in datagrams)
    assert sum(len(unpack(d)) for d in datagrams) == PER_FRAME
