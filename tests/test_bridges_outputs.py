"""`--out SPEC` parsing and opening: every scheme, its defaults, and one-line errors naming the spec."""

from __future__ import annotations

import re
import socket

import pytest

from liverig.bridges.bvh import BvhWriter
from liverig.bridges.errors import BridgeError, SpecError
from liverig.bridges.osc import OscSender
from liverig.bridges.outputs import open_output, parse_spec
from liverig.bridges.vmc import VmcSender
from liverig.bridges.ws import WebSocketServer
from liverig.core.config import BridgesConfig, OscConfig, VmcConfig
from tests.bridges_support import make_rig


@pytest.mark.parametrize(
    ("spec", "scheme", "host", "port"),
    [
        ("vmc://", "vmc", "127.0.0.1", 39539),
        ("vmc://192.168.1.20", "vmc", "192.168.1.20", 39539),
        ("vmc://localhost:39540", "vmc", "localhost", 39540),
        ("VMC://[::1]:5000", "vmc", "::1", 5000),
        ("osc://10.0.0.2:7000", "osc", "10.0.0.2", 7000),
        ("osc://", "osc", "127.0.0.1", 9000),
        ("ws://0.0.0.0:8080?token=abc", "ws", "0.0.0.0", 8080),
        ("ws://", "ws", "127.0.0.1", 8765),
        ("ws://127.0.0.1:0", "ws", "127.0.0.1", 0),
    ],
)
def test_network_specs(spec, scheme, host, port):
    parsed = parse_spec(spec)
    assert (parsed.scheme, parsed.host, parsed.port) == (scheme, host, port)


def test_ws_query_and_bvh_path():
    assert parse_spec("ws://0.0.0.0:1?token=abc&format=json").query == {"token": "abc", "format": "json"}
    assert parse_spec("bvh:out/take 1.bvh").path == "out/take 1.bvh"
    assert parse_spec("bvh:/tmp/x.bvh").path == "/tmp/x.bvh"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "expected SCHEME"),
        ("vmc", "expected SCHEME"),
        ("foo://x:1", "unknown output 'foo'"),
        ("record:x.jsonl", "unknown output 'record'"),
        ("vmc:127.0.0.1:39539", "expected vmc://HOST:PORT"),
        ("vmc://host:notaport", "port"),
        ("vmc://host:99999", "out of range"),
        ("vmc://host:", "empty port"),
        ("vmc://host:0", "port 0"),
        ("vmc://host:1/path", "unexpected parts"),
        ("vmc://host:1?token=x", "unknown option 'token'"),
        ("osc://user@host:1", "unexpected parts"),
        ("ws://host:1?tokn=x", "unknown option 'tokn'"),
        ("ws://host:1?token=", "exactly one value"),
        ("ws://host:1?format=xml", "msgpack or json"),
        ("bvh:", "bvh:PATH"),
    ],
)
def test_malformed_specs_are_one_line_spec_errors(spec, reason):
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    message = str(info.value)
    shown = re.sub(r"(token=)[^&']*", r"\1***", repr(spec))  # a token is never echoed
    assert reason in message and shown in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_open_each_kind(tmp_path):
    config = BridgesConfig(vmc=VmcConfig(bundle=False), osc=OscConfig(bundle=False))
    outputs = [
        open_output("vmc://127.0.0.1:39999", config),
        open_output("osc://127.0.0.1:39998", config),
        open_output("ws://127.0.0.1:0", config, fps=60.0),
        open_output(f"bvh:{tmp_path / 'take.bvh'}", config, fps=60.0),
    ]
    try:
        assert [type(o) for o in outputs] == [VmcSender, OscSender, WebSocketServer, BvhWriter]
        assert outputs[0].config.bundle is False and outputs[1].bundle is False
        assert outputs[2].fps == 60.0 and outputs[2].port > 0 and outputs[3].fps == 60.0
        assert outputs[0].name == "vmc://127.0.0.1:39999"
        for output in outputs:
            output.send(None, make_rig(0))
    finally:
        for output in outputs:
            output.close()
    assert (tmp_path / "take.bvh").exists()


def test_ws_spec_token_and_format_reach_the_server():
    server = open_output("ws://0.0.0.0:0?token=abc&format=json")
    try:
        assert server.config.format == "json" and server._token == "abc"
    finally:
        server.close()


def test_extra_schemes_are_routed_first():
    opened = []

    class Recorder:
        name = "record:x"

        def send(self, pose, rig):
            pass

        def close(self):
            pass

    output = open_output("record:x.jsonl", extra={"record": lambda spec: opened.append(spec) or Recorder()})
    assert isinstance(output, Recorder) and opened == ["record:x.jsonl"]


def test_start_failures_are_bridge_errors(tmp_path):
    with pytest.raises(BridgeError, match="no-such-host.invalid"):
        open_output("vmc://no-such-host.invalid:39539")
    with pytest.raises(BridgeError, match="token"):
        open_output("ws://0.0.0.0:0")
    with pytest.raises(BridgeError, match="does not exist"):
        open_output(f"bvh:{tmp_path / 'nope' / 'take.bvh'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(BridgeError, match="in use"):
            open_output(f"ws://127.0.0.1:{taken.getsockname()[1]}")
