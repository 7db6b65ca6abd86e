"""`--out SPEC` -> an Output: the one place that knows the spec syntax.

    vmc://HOST[:PORT]          VMC Performer over UDP (default 127.0.0.1:39539)
    osc://HOST[:PORT]          plain OSC, `/liverig/...` addresses (default 127.0.0.1:9000)
    ws://HOST[:PORT][?token=T][&format=json|msgpack]
                               WebSocket server bound to HOST (default 127.0.0.1:8765)
    bvh:PATH                   BVH recording

Spelling mistakes raise `SpecError` (a ValueError: exit code 2, nothing started); an output that is
spelled right but cannot start raises `BridgeError`. Both messages are one line naming the spec.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from liverig.bridges.base import Output
from liverig.bridges.errors import BridgeError, SpecError
from liverig.core.config import BridgesConfig

__all__ = [
    "BridgeError",
    "SpecError",
    "open_output",
    "parse_spec",
    "rig_requirement",
    "OutputSpec",
    "SCHEMES",
]

SCHEMES = ("vmc", "osc", "ws", "bvh")
_DEFAULT_PORTS = {"vmc": 39539, "osc": 9000, "ws": 8765}
_QUERY_KEYS = {"ws": ("token", "format")}
# Outputs that can only carry one kind of rig: VMC receivers hold a Unity humanoid (bridges/vmc.py).
_RIG_REQUIREMENTS = {"vmc": "unity_humanoid"}


class OutputSpec:
    """A parsed spec: scheme plus host/port/query for network outputs, or a path for files."""

    def __init__(self, spec: str, scheme: str, host: str = "", port: int = 0, path: str = "", query=None):
        self.spec = spec
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query: dict[str, str] = dict(query or {})

    def __repr__(self) -> str:
        return f"OutputSpec({self.spec!r})"


def parse_spec(spec: str) -> OutputSpec:
    """Check the syntax of one `--out` spec (no sockets, no files). A refusal never shows a token
    the spec carries (`token=***`), and shows at most 200 characters of the spec."""
    try:
        return _parse_spec(spec)
    except SpecError as error:
        raise SpecError(redact_refusal(spec, str(error))) from None


def redact_refusal(spec: str, message: str) -> str:
    """A refusal of `spec` made safe to show: every token value in it replaced by *** (also used
    for `page://` specs, runtime/page.py), at most 300 characters."""
    message = message.replace(repr(spec), repr(_redacted(spec)))
    message = _TOKEN_VALUE.sub(r"\1***", message)  # pieces of the spec quoted elsewhere
    return message if len(message) <= 300 else message[:297] + "..."


def url_complaint(error: ValueError) -> str:
    """urllib's complaint about a spec without the piece of the spec it quotes ("... as '8765?...'"):
    the spec is shown already, redacted, and a piece may be part of a token (found by atheris)."""
    return re.sub(r"\s*(as\s*)?'.*", "", str(error)) or "not a URL"


_TOKEN_VALUE = re.compile(r"(token=)[^&#'\s]*", re.IGNORECASE)


def _redacted(spec: str) -> str:
    """`spec` with every token value replaced by ***: whatever follows `token=` up to `&` or `#`
    (a quote or a space included), and the value of a query key that decodes to `token` (`tok%65n=`
    is the token to parse_qs). The atheris fuzzer found both shown in refusals."""
    spans = [match.span(1) for match in re.finditer(r"token=([^&#]*)", spec, re.IGNORECASE)]
    start = spec.find("?")
    if start >= 0:
        end = spec.find("#", start)
        at = start + 1
        for pair in spec[at : end if end >= 0 else len(spec)].split("&"):
            key, equals, _ = pair.partition("=")
            if equals and unquote_plus(key).strip().lower() == "token":
                spans.append((at + len(key) + 1, at + len(pair)))
            at += len(pair) + 1
    merged: list[list[int]] = []
    for first, last in sorted(set(spans)):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    for first, last in reversed(merged):
        spec = spec[:first] + "***" + spec[last:]
    return spec


def _parse_spec(spec: str) -> OutputSpec:
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise SpecError(f"--out {spec!r}: expected SCHEME:..., one of {', '.join(_examples())}")
    if scheme == "bvh":
        if not rest or rest.startswith("//"):
            raise SpecError(f"--out {spec!r}: expected bvh:PATH, e.g. bvh:take1.bvh")
        return OutputSpec(spec, scheme, path=rest)
    if scheme not in _DEFAULT_PORTS:
        raise SpecError(f"--out {spec!r}: unknown output {scheme!r}; expected {', '.join(_examples())}")
    if not rest.startswith("//"):
        raise SpecError(f"--out {spec!r}: expected {scheme}://HOST:PORT")
    try:
        parts = urlsplit(spec)
        port = parts.port
    except ValueError as error:
        raise SpecError(f"--out {spec!r}: {url_complaint(error)}") from None
    if parts.path not in ("", "/") or parts.fragment or parts.username or parts.password:
        raise SpecError(f"--out {spec!r}: unexpected parts after HOST:PORT")
    if port is None:
        if parts.netloc.endswith(":"):
            raise SpecError(f"--out {spec!r}: empty port")
        port = _DEFAULT_PORTS[scheme]
    if port == 0 and scheme != "ws":
        raise SpecError(f"--out {spec!r}: port 0 is not a destination")
    host = parts.hostname or "127.0.0.1"
    query: dict[str, str] = {}
    if parts.query:
        allowed = _QUERY_KEYS.get(scheme, ())
        try:
            pairs = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise SpecError(f"--out {spec!r}: malformed query (expected KEY=VALUE&...)") from None
        for key, values in pairs.items():
            if key not in allowed:
                hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
                raise SpecError(f"--out {spec!r}: unknown option {key!r}{hint}")
            if len(values) != 1 or not values[0]:
                raise SpecError(f"--out {spec!r}: option {key!r} needs exactly one value")
            query[key] = values[0]
    if query.get("format", "msgpack") not in ("msgpack", "json"):
        raise SpecError(f"--out {spec!r}: format must be msgpack or json")
    return OutputSpec(spec, scheme, host=host, port=port, query=query)


def rig_requirement(spec: str) -> str | None:
    """The kind of rig this output needs whatever `retarget.rig` is ("unity_humanoid"), or None."""
    return _RIG_REQUIREMENTS.get(spec.partition(":")[0].lower())


def open_output(
    spec: str,
    config: BridgesConfig | Any | None = None,
    *,
    fps: float = 30.0,
    units: str = "m",
    axes: Mapping[str, str] | None = None,
    rest_rotations: Sequence | None = None,
    extra: Mapping[str, Callable[[str], Output]] | None = None,
) -> Output:
    """Parse `spec` and start the output. `extra` maps more schemes (e.g. "record") to factories
    called with the whole spec. `fps`, `units`, `axes` ({"handedness", "up", "forward"}, e.g.
    "left", "+y", "+z") and the rig's `rest_rotations` (B, 4) describe the stream (BVH frame time
    and handedness, WebSocket hello)."""
    scheme = spec.partition(":")[0].lower()
    if extra and scheme in extra:
        return extra[scheme](spec)
    parsed = parse_spec(spec)
    config = config if config is not None else BridgesConfig()
    if parsed.scheme == "vmc":
        from liverig.bridges.vmc import VmcSender

        return VmcSender(parsed.host, parsed.port, config.vmc)
    if parsed.scheme == "osc":
        from liverig.bridges.osc import OscSender

        osc = config.osc
        return OscSender(
            parsed.host, parsed.port, bundle=osc.bundle, max_datagram_bytes=osc.max_datagram_bytes
        )
    if parsed.scheme == "ws":
        from liverig.bridges.ws import WebSocketServer

        ws_config = config.websocket
        if "token" in parsed.query:
            print(
                f"liverig: {parsed.scheme}://{parsed.host}:{parsed.port}: a token on the command line is "
                "visible to other users (ps); prefer the LIVERIG_WS_TOKEN environment variable",
                file=sys.stderr,
            )
        if "format" in parsed.query:
            ws_config = ws_config.model_copy(update={"format": parsed.query["format"]})
        return WebSocketServer(
            parsed.host,
            parsed.port,
            ws_config,
            token=parsed.query.get("token"),
            fps=fps,
            units=units,
            axes=dict(axes) if axes else None,
            rest_rotations=rest_rotations,
        )
    from liverig.bridges.bvh import BvhWriter

    return BvhWriter(parsed.path, fps=fps, mirror_axis=_left_right_axis(axes))


def _left_right_axis(axes: Mapping[str, str] | None) -> int | None:
    """For a left-handed rig, the index of its left-right axis (the one neither up nor forward)."""
    if not axes or axes.get("handedness") != "left":
        return None
    used = {axes["up"][-1].lower(), axes["forward"][-1].lower()}
    return next(i for i, letter in enumerate("xyz") if letter not in used)


def _examples() -> list[str]:
    return ["vmc://HOST:PORT", "osc://HOST:PORT", "ws://HOST:PORT", "bvh:PATH"]
