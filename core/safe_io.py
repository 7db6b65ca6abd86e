"""Reading files the user names, safely: regular files only, size-limited, UTF-8, depth-limited.

Every file liverig reads because a user named it (a config, a body profile, a rig profile or model,
a landmark recording) goes through here first, so that a hostile or mistaken path gives one line
saying what is wrong instead of a hang or a traceback:
- a FIFO, a character device (/dev/zero) or a socket is refused *before* `open()`, which would block
  on a FIFO forever or read a device until memory runs out; the open itself is non-blocking and the
  opened file is checked again (a path swapped between the check and the open is still refused);
- a file larger than the reader's limit is refused without being read;
- text must be UTF-8; the message names the line of the first bad byte;
- YAML is scanned event by event (PyYAML's parser is iterative) before it is built (PyYAML's composer
  is recursive): nesting deeper than `max_depth` and alias expansion beyond `max_nodes` ("billion
  laughs") are refused before they can cost a RecursionError or the memory of an exponential tree;
- JSON rejects `NaN` / `Infinity` literals (Python's json accepts them); nesting too deep is one line.

Errors are `UnsafeInput` (a ValueError) whose message does not repeat the path: each loader prefixes
its own "cannot read config PATH: ..." so the user sees which file and which reader.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

CONFIG_MAX_BYTES = 1 << 20  # configs, body profiles and rig profiles are a few KB
MODEL_MAX_BYTES = 1 << 30  # a .vrm/.glb with its textures: tens of MB, rarely hundreds
YAML_MAX_DEPTH = 32  # the deepest real config nests 4 levels
YAML_MAX_NODES = 200_000  # after alias expansion; a rig profile has a few thousand

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)

try:  # libyaml's parser when present: the same events, several times faster
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader


class UnsafeInput(ValueError):
    """A file or document that is refused; the message is one line and does not repeat the path."""


def file_kind(mode: int) -> str:
    """'a FIFO (named pipe)', 'a character device', ... for what is not a regular file."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """The path's stat if it is a regular file (symlinks followed); raises UnsafeInput for anything
    else and FileNotFoundError when it does not exist. `stat` never blocks, unlike `open`."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeInput(f"is {file_kind(info.st_mode)}, not a regular file")
    return info


def read_bytes(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most `max_bytes`; OSError passes through."""
    info = check_regular(path)
    if info.st_size > max_bytes:
        raise UnsafeInput(f"is too large ({info.st_size:,} bytes; the limit is {max_bytes:,})")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # swapped for something else since the check
            raise UnsafeInput(f"is {file_kind(opened.st_mode)}, not a regular file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # grew since the stat
                raise UnsafeInput(f"is too large (over {max_bytes:,} bytes)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_utf8(data: bytes) -> str:
    """`data` as text; a byte that is not UTF-8 is named with its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UnsafeInput(f"is not UTF-8 text (line {line}, byte {error.start})") from None
    return text.removeprefix("\ufeff")


def read_text(path: str | os.PathLike, max_bytes: int = CONFIG_MAX_BYTES) -> str:
    """A regular UTF-8 text file of at most `max_bytes`."""
    return decode_utf8(read_bytes(path, max_bytes))


def _mark(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error)
    problem = " ".join(str(problem).split())
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def check_yaml_shape(text: str, max_depth: int = YAML_MAX_DEPTH, max_nodes: int = YAML_MAX_NODES) -> None:
    """Refuse YAML nested deeper than `max_depth` or expanding (aliases counted in full) to more than
    `max_nodes` nodes, from the parser's events alone (nothing is built)."""
    anchors: dict[str, int] = {}
    stack: list[list] = [[None, 0]]  # [anchor, nodes so far] per open collection
    try:
        for event in yaml.parse(text, Loader=_YamlLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) > max_depth:
                    line = event.start_mark.line + 1 if event.start_mark else "?"
                    raise UnsafeInput(f"YAML nested deeper than {max_depth} levels (line {line})")
                stack.append([event.anchor, 1])
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, size = stack.pop()
                if anchor is not None:
                    anchors[anchor] = size
                stack[-1][1] += size
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    anchors[event.anchor] = 1
                stack[-1][1] += 1
            elif isinstance(event, yaml.AliasEvent):
                stack[-1][1] += anchors.get(event.anchor, 1)
            else:
                continue
            if sum(size for _, size in stack) > max_nodes:
                raise UnsafeInput(f"YAML expands to more than {max_nodes:,} values (aliases counted in full)")
    except yaml.YAMLError as error:
        raise UnsafeInput(f"not valid YAML: {_mark(error)}") from None


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` after `check_yaml_shape`; errors are one-line UnsafeInput with the line."""
    check_yaml_shape(text)
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as error:
        raise UnsafeInput(f"not valid YAML: {_mark(error)}") from None
    except RecursionError:  # pragma: no cover - check_yaml_shape bounds the depth first
        raise UnsafeInput("YAML nested too deeply") from None


def read_yaml(path: str | os.PathLike, max_bytes: int = CONFIG_MAX_BYTES) -> Any:
    """A YAML file through every check above."""
    return load_yaml(read_text(path, max_bytes))


def read_yaml_file(path: str | os.PathLike, what: str, error: type[Exception]) -> Any:
    """`read_yaml` with its failures as one-line `error`s naming `what` and the file: every YAML the
    node reads (config, rig profiles, body profiles, face calibrations) says the same things."""
    try:
        return read_yaml(path)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except (OSError, UnsafeInput) as problem:
        raise error(f"cannot read {what} {path}: {describe(problem)}") from None


def input_file_problem(argument: str) -> str | None:
    """Why a source file (`video:`, `replay:`, `audio:`) cannot be read; None: it can. Checked without
    opening it: a FIFO would block the open forever."""
    try:
        path = Path(argument)
        is_dir, is_file, exists = path.is_dir(), path.is_file(), path.exists()
    except (OSError, ValueError) as error:  # a name too long for the file system, a NUL byte
        return getattr(error, "strerror", None) or "not a usable path"
    if is_dir:
        return f"{shown(argument)} is a directory; name a file in it"
    if exists and not is_file:
        return f"{shown(argument)} is not a regular file (a device, FIFO or socket)"
    if not is_file:
        return f"file not found: {shown(argument)}"
    return None


def _no_constant(name: str) -> Any:
    raise UnsafeInput(f"{name} is not a number JSON allows")


def load_json(text: str | bytes) -> Any:
    """JSON without NaN/Infinity literals; nesting too deep for the decoder (it recurses, and
    raises RecursionError) is one line too."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise UnsafeInput("JSON nested too deeply") from None
    except UnsafeInput:
        raise
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an int too long to convert
        raise UnsafeInput(f"not valid JSON: {str(error).splitlines()[0]}") from None


def describe(error: BaseException) -> str:
    """One line for an OSError or UnsafeInput met while reading (strerror, not the repr)."""
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def shown(text: str, limit: int = 80) -> str:
    """`text` fit for a one-line message: control characters escaped, at most `limit` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def output_refusal(path: str | os.PathLike, overwrite: bool) -> str | None:
    """Why a file output may not write `path` (None: it may): only regular files are ever written, and
    an existing one only when the user said --overwrite."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"cannot check {path}: {error.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is {file_kind(info.st_mode)}; outputs write regular files only"
    if not overwrite:
        return f"{path} already exists; pass --overwrite to replace it, or name a new file"
    return None


__all__ = [
    "CONFIG_MAX_BYTES",
    "MODEL_MAX_BYTES",
    "UnsafeInput",
    "check_regular",
    "check_yaml_shape",
    "decode_utf8",
    "describe",
    "load_json",
    "load_yaml",
    "output_refusal",
    "read_bytes",
    "read_text",
    "read_yaml",
    "read_yaml_file",
    "input_file_problem",
    "shown",
]
