"""Record the rig to a BVH file (`bvh:PATH`) that stays loadable whenever the node is stopped.

Layout: the hierarchy comes from the first RigFrame (bone names, parents, local offsets, in the rig's
units times `scale`). Every joint has `Zrotation Xrotation Yrotation` channels (intrinsic: R = Rz Rx Ry,
degrees); the root joint also has `Xposition Yposition Zposition`, absolute, with a zero OFFSET so
readers that add the offset and readers that replace it agree. The rig's root transform is folded
into the root joint: root joint world = root_position/root_rotation composed with the root bone's
local pose. A rig with several root bones gets a synthetic ROOT joint named "Root" that carries
the root transform. Leaves get an End Site continuing the bone. Later frames reuse the first
frame's offsets: BVH has no per-frame bone lengths.

Handedness: BVH readers (Blender, MotionBuilder, bvhio) are right-handed. A left-handed rig (Unity,
Unreal) written as it is would load as its mirror image, the left arm on the figure's right; so
`mirror_axis` (the rig's left-right axis, which the node passes for left-handed rigs) is negated in
every position and rotation: the same figure, in right-handed axes, up and forward unchanged.

Crash safety: the header holds `Frames:` and a fixed-width, space-padded count. Each frame is one
`pwrite` of a whole motion line at the end of the file, then one `pwrite` of the new count into the
header, so `Frames:` never promises a line that is not there:
- SIGINT/SIGTERM/SIGHUP are blocked across the two writes in this thread, and a KeyboardInterrupt
  raised between them (a signal that arrived earlier) still lets the count be written: the file is
  exact. A signal mask is per thread, so in a multi-threaded process (numpy's BLAS, the capture
  thread) a signal whose default action kills the process can still land in another thread: the
  node (run_node.py) therefore turns SIGTERM and SIGHUP into KeyboardInterrupt, like SIGINT.
- SIGKILL can land between the two writes, leaving one whole motion line more than `Frames:` says
  (readers that honour the count ignore it; those that read every line get one more frame). Lines
  never straddle a memory page (they are padded with spaces where needed) and Linux only stops a
  killed write between pages, so no half line is ever left at the end.
The file appears at PATH (atomically, via rename) with its first frame. Bytes reach the page cache
every frame (they survive the process) and the disk on `close()` (fsync).
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import signal
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from liverig.bridges.errors import BridgeError
from liverig.core.types import Pose, RigFrame

COUNT_WIDTH = 10  # digits reserved for the frame count in the header
PAGE = mmap.PAGESIZE
_BLOCKED = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}
_CAN_BLOCK = hasattr(signal, "pthread_sigmask")  # POSIX


class BvhWriter:
    """`bvh:PATH`: one motion line per `send`, a valid BVH on disk after every frame."""

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = 30.0,
        *,
        scale: float = 1.0,
        mirror_axis: int | None = None,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        # Reflection across the mirrored axis: positions p -> M p, rotations R -> M R M.
        self._mirror = np.ones(3) if mirror_axis is None else np.where(np.arange(3) == mirror_axis, -1.0, 1.0)
        self.path = Path(path).expanduser()
        self.name = f"bvh:{path}"
        self.fps = float(fps)
        self.scale = float(scale)
        self.frames = 0
        self._fd: int | None = None
        self._end = 0  # file offset where the next motion line goes
        self._count_at = 0  # file offset of the frame count digits
        self._order: list[int] = []  # rig bone index for each BVH joint, hierarchy order (-1: synthetic)
        self._root_bone = -1  # rig bone index that is the BVH root, -1 when synthetic
        self._layout: tuple | None = None
        self._closed = False
        self._longest = 0  # longest motion line so far, bytes
        self._check_writable()

    def _check_writable(self) -> None:
        if self.path.is_dir():
            raise BridgeError(f"{self.name}: is a directory")
        self._refuse_special()
        directory = self.path.parent
        if not directory.is_dir():
            raise BridgeError(f"{self.name}: directory {str(directory)!r} does not exist")
        try:
            fd, probe = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".probe")
        except OSError as error:
            raise BridgeError(f"{self.name}: cannot write in {str(directory)!r}: {error.strerror}") from None
        os.close(fd)
        os.unlink(probe)

    def _refuse_special(self) -> None:
        """Only a regular file is ever replaced: the first frame renames a new file onto the path, and
        renaming onto /dev/null (as root) or a FIFO would replace the device or pipe."""
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            return
        except OSError as error:
            raise BridgeError(f"{self.name}: cannot check the path: {error.strerror}") from None
        if not stat.S_ISREG(mode):
            raise BridgeError(
                f"{self.name}: not a regular file (a device, FIFO or socket); BVH writes regular files only"
            )

    # ---- output protocol -------------------------------------------------------------------------

    def send(self, pose: Pose | None, rig: RigFrame) -> None:
        """One motion line. A failed write (disk full, I/O error) or the file deleted under the writer
        (its folder removed) stops it with one BridgeError line saying what the file keeps."""
        if self._closed:
            return
        if self._fd is None:
            self._start(rig)
            return
        try:
            self._append(rig)
        except OSError as error:
            self._abandon()
            raise BridgeError(
                f"{self.name}: {error.strerror or error}; stopped: {self.path} keeps the "
                f"{self.frames} frames written before (a valid BVH)"
            ) from None
        if os.fstat(self._fd).st_nlink == 0:
            self._abandon()
            raise BridgeError(
                f"{self.name}: the file was deleted (or its folder removed) while recording; "
                f"stopped: nothing kept ({self.frames} frames were lost with it)"
            )

    def _abandon(self) -> None:
        """Stop without writing again: close the file, keep what is in it."""
        self._closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _append(self, rig: RigFrame) -> None:
        if (tuple(rig.bone_names), tuple(rig.parents)) != self._layout:
            raise BridgeError(f"{self.name}: the rig changed during the recording (BVH has one skeleton)")
        line = self._place(self._motion_line(rig), self._end)
        interrupt: BaseException | None = None
        with _signals_blocked():
            try:
                if os.pwrite(self._fd, line, self._end) != len(line):  # a short write: the disk is full
                    os.ftruncate(self._fd, self._end)  # no partial line stays behind
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            except OSError:
                raise
            except BaseException as error:  # KeyboardInterrupt from a signal that came before the block
                interrupt = error
            while True:
                try:
                    self._settle()
                    break
                except OSError:
                    raise
                except BaseException as error:  # as above; settling again is idempotent
                    interrupt = interrupt or error
        if interrupt is not None:
            raise interrupt

    def _settle(self) -> None:
        """Count the line if it reached the file, and write the count into the header."""
        size = os.fstat(self._fd).st_size
        if size > self._end:
            self._end, self.frames = size, self.frames + 1
        os.pwrite(self._fd, self._count_bytes(), self._count_at)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._fd is not None:
            os.pwrite(self._fd, self._count_bytes(), self._count_at)
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    # ---- file layout -----------------------------------------------------------------------------

    def _place(self, line: bytes, start: int) -> bytes:
        """Pad `line` (spaces before its newline) so that the next line will not straddle a page.

        Linux checks for SIGKILL between the pages of a write, never inside one: a line that lies
        within one page is written whole or not at all. Lines have fixed-width fields, so the next
        line is as long as this one (or as the longest so far).
        """
        self._longest = max(self._longest, len(line))
        room = PAGE - (start + len(line)) % PAGE
        if room < self._longest <= PAGE:
            line = line[:-1] + b" " * room + b"\n"
        return line

    def _count_bytes(self) -> bytes:
        return f"{self.frames:<{COUNT_WIDTH}d}".encode()

    def _start(self, rig: RigFrame) -> None:
        header = self._header(rig)
        self._layout = (tuple(rig.bone_names), tuple(rig.parents))
        head, tail = header.split(b"\x00")
        if len(head) % PAGE + COUNT_WIDTH > PAGE:  # keep the count within one page (one atomic write)
            head += b" " * (PAGE - len(head) % PAGE)
        self._count_at = len(head)
        self.frames = 1
        head = head + self._count_bytes() + tail
        data = head + self._place(self._motion_line(rig), len(head))
        self._end = len(data)
        try:
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        except OSError as error:
            raise BridgeError(f"{self.name}: cannot create the file: {error.strerror}") from None
        try:
            if os.pwrite(fd, data, 0) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.chmod(temp, 0o644)
            self._refuse_special()  # once more, just before the rename
            os.replace(temp, self.path)
        except (OSError, BridgeError) as error:
            os.close(fd)
            Path(temp).unlink(missing_ok=True)
            if isinstance(error, BridgeError):
                raise
            raise BridgeError(f"{self.name}: cannot write the file: {error.strerror}") from None
        self._fd = fd

    def _header(self, rig: RigFrame) -> bytes:
        names = [_joint_name(n) for n in rig.bone_names]
        parents = [int(p) for p in rig.parents]
        count = len(names)
        if len(set(names)) != count:
            raise BridgeError(f"{self.name}: bone names are not unique once spaces are replaced")
        if any(not -1 <= p < count or p == i for i, p in enumerate(parents)):
            raise BridgeError(f"{self.name}: invalid parent indices")
        children: list[list[int]] = [[] for _ in range(count)]
        roots = []
        for i, p in enumerate(parents):
            (roots if p < 0 else children[p]).append(i)
        offsets = np.asarray(rig.local_positions, dtype=np.float64) * self.scale * self._mirror
        lines = ["HIERARCHY"]
        self._order = []

        def joint(i: int, depth: int, keyword: str, offset: np.ndarray) -> None:
            pad = "  " * depth
            self._order.append(i)
            lines.append(f"{pad}{keyword} {names[i]}")
            lines.append(f"{pad}{{")
            lines.append(f"{pad}  OFFSET {_fmt(offset)}")
            if keyword == "ROOT":
                lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
            else:
                lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
            for c in children[i]:
                joint(c, depth + 1, "JOINT", offsets[c])
            if not children[i]:
                tip = offsets[i] * 0.5 if keyword == "JOINT" else np.zeros(3)
                lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_fmt(tip)}", f"{pad}  }}"])
            lines.append(f"{pad}}}")

        if len(roots) == 1:
            self._root_bone = roots[0]
            joint(roots[0], 0, "ROOT", np.zeros(3))
        else:
            if not roots:
                raise BridgeError(f"{self.name}: the rig has no root bone (a parent cycle)")
            self._root_bone = -1
            self._order.append(-1)
            synthetic = "Root" if "Root" not in names else "LiverigRoot"
            lines += [f"ROOT {synthetic}", "{", "  OFFSET 0 0 0"]
            lines.append("  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
            for r in roots:
                joint(r, 1, "JOINT", offsets[r])
            lines.append("}")
        if len(self._order) != count + (self._root_bone == -1):
            raise BridgeError(f"{self.name}: the rig's parents do not form a tree")
        lines += ["MOTION", "Frames: \x00", f"Frame Time: {1.0 / self.fps:.8f}", ""]
        return "\n".join(lines).encode()

    def _motion_line(self, rig: RigFrame) -> bytes:
        root = Rotation.from_quat(rig.root_rotation)
        root_pos = np.asarray(rig.root_position, dtype=np.float64) * self.scale
        local = Rotation.from_quat(rig.local_rotations)
        if self._root_bone >= 0:
            b = self._root_bone
            top_pos = root_pos + root.apply(np.asarray(rig.local_positions[b], dtype=np.float64) * self.scale)
            quats = local.as_quat()
            quats[b] = (root * local[b]).as_quat()
        else:
            top_pos = root_pos
            quats = np.vstack([local.as_quat(), root.as_quat()])  # index -1 in _order: the synthetic root
        # Mirroring an axis keeps that component of each quaternion's vector part and negates the other two.
        quats[:, :3] *= self._mirror * np.prod(self._mirror)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gimbal lock: the angles still give the same rotation
            euler = Rotation.from_quat(quats[self._order]).as_euler("ZXY", degrees=True)
        values = np.concatenate([top_pos * self._mirror, euler.ravel()])
        values = np.round(values, 6) + 0.0  # + 0.0: no "-0.000000"
        fields = "%14.6f " * 3 + "%11.6f " * (len(values) - 3)  # fixed width: angles are within +-180
        return (fields[:-1] % tuple(values.tolist()) + "\n").encode()


def _num(value: float) -> str:
    text = f"{value:.6f}"
    return "0.000000" if text == "-0.000000" else text


def _fmt(vector: np.ndarray) -> str:
    return " ".join(_num(float(v)) for v in vector)


def _joint_name(name: str) -> str:
    return "_".join(name.split()) or "_"


class _signals_blocked:  # noqa: N801 - used as a statement-like context manager
    """Hold SIGINT/SIGTERM/SIGHUP back for a few microseconds so two writes land together."""

    def __enter__(self) -> None:
        if _CAN_BLOCK:
            self._previous = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)

    def __exit__(self, *exc: object) -> None:
        if _CAN_BLOCK:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)
