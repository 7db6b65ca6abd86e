"""liverig live link: a Blender add-on that receives the node's WebSocket stream and drives an armature.

Install: Edit > Preferences > Add-ons > Install... > blender/liverig_link.py (needs the `websockets`
Python package in Blender's Python; Debian's Blender uses the system Python: apt-get install
python3-websockets). Then in the 3D view's sidebar (N), tab "liverig": the stream's address (the
node's `--out ws://127.0.0.1:8765`) and Connect. The armature driven is the active armature when its
bones carry the stream's bone names (e.g. one imported from the node's own BVH recording of the same
rig), otherwise one built from the stream's `hello` (rest offsets and parents).

The stream's rotations are in the rig's axes (docs/outputs.md, schema 3); they are mirrored to
right-handed axes when the rig is left-handed (as the BVH output does) and turned to Blender's Z-up,
-Y-forward axes. Each bone's pose is set so that its joint turns, relative to its rest pose, as the
stream says; the root also moves. Receiving runs in a thread; the pose is applied in Blender's main
thread (a timer, 60 times a second), newest frame only.
"""

from __future__ import annotations

import asyncio
import json
import threading

import bpy
from mathutils import Matrix, Quaternion, Vector

bl_info = {
    "name": "liverig live link",
    "author": "liverig",
    "version": (1, 0, 0),
    "blender": (3, 0, 0),
    "location": "View3D > Sidebar > liverig",
    "description": "Drive an armature from a liverig node's WebSocket stream",
    "category": "Animation",
}

# Stream axes (right-handed, +Y up, +Z forward, once mirrored) -> Blender (+Z up, the figure facing -Y).
TO_BLENDER = Matrix(((1, 0, 0), (0, 0, -1), (0, 1, 0)))


class Link:
    """The stream's newest `hello` and `frame`, received in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url + ("&" if "?" in url else "?") + "format=json"
        self.hello: dict | None = None
        self.frame: dict | None = None
        self.frames = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liverig link", daemon=True)

    def start(self) -> Link:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            asyncio.run(self._receive())
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self.error = f"{type(error).__name__}: {error}"

    async def _receive(self) -> None:
        import websockets

        async with websockets.connect(self.url, max_size=2**24) as socket:
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(socket.recv(), 0.2)
                except TimeoutError:
                    continue
                message = json.loads(raw)
                if message.get("type") == "hello":
                    self.hello, self.frame = message, None
                elif message.get("type") == "frame":
                    self.frame = message
                    self.frames += 1


def _quat(xyzw) -> Quaternion:
    return Quaternion((xyzw[3], xyzw[0], xyzw[1], xyzw[2]))


class Mapping:
    """How one stream (its `hello`) maps onto Blender: axes, units and rest pose."""

    def __init__(self, hello: dict) -> None:
        self.hello = hello
        mirror = Matrix.Diagonal((-1, 1, 1)) if hello["axes"]["handedness"] == "left" else Matrix.Identity(3)
        up, forward = hello["axes"]["up"][-1], hello["axes"]["forward"][-1]
        # stream axes -> the canonical right-handed Y-up Z-forward frame, then -> Blender
        columns = {"x": 0, "y": 1, "z": 2}
        side = next(a for a in "xyz" if a not in (up, forward))
        to_canonical = Matrix.Identity(3)
        for row, axis in enumerate((side, up, forward)):
            to_canonical[row] = [1.0 if columns[axis] == c else 0.0 for c in range(3)]
        self.axes = TO_BLENDER @ mirror @ to_canonical  # may have det -1: rotations are conjugated by it
        self.unit = 0.01 if hello["units"] == "cm" else 1.0
        self.rest = self.world(hello["rest_pos"], hello["rest_rot"], [0, 0, 0], [0, 0, 0, 1])

    def world(self, positions, rotations, root_pos, root_rot) -> list[tuple[Vector, Matrix]]:
        """Forward kinematics in Blender axes: (position, rotation matrix) per bone."""
        out: list[tuple[Vector, Matrix]] = []
        raw: list[tuple[Vector, Quaternion]] = []
        for b, parent in enumerate(self.hello["parents"]):
            p_pos, p_rot = (Vector(root_pos), _quat(root_rot)) if parent < 0 else raw[parent]
            position = p_pos + p_rot @ Vector(positions[b])
            rotation = p_rot @ _quat(rotations[b])
            raw.append((position, rotation))
            matrix = self.axes @ rotation.to_matrix() @ self.axes.inverted()
            out.append((self.axes @ position * self.unit, matrix))
        return out


def build_armature(hello: dict, name: str = "liverig") -> bpy.types.Object:
    """An armature with the stream's bones at their rest positions (each bone pointing at its child)."""
    mapping = Mapping(hello)
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    parents = hello["parents"]
    for b, bone_name in enumerate(hello["bones"]):
        bone = data.edit_bones.new(bone_name)
        head = mapping.rest[b][0]
        children = [c for c, p in enumerate(parents) if p == b]
        tail = mapping.rest[children[0]][0] if children else None
        if tail is None or (tail - head).length < 1e-4:
            direction = head - mapping.rest[parents[b]][0] if parents[b] >= 0 else Vector((0, 0, 1))
            tail = head + direction.normalized() * 0.05
        bone.head, bone.tail = head, tail
        if parents[b] >= 0:
            bone.parent = data.edit_bones[hello["bones"][parents[b]]]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def apply_frame(obj: bpy.types.Object, mapping: Mapping, frame: dict) -> None:
    """Pose `obj`'s bones (those named like the stream's) as `frame` says."""
    posed = mapping.world(frame["pos"], frame["rot"], frame["root"]["pos"], frame["root"]["rot"])
    targets: dict[str, Matrix] = {}
    for b, name in enumerate(mapping.hello["bones"]):
        bone = obj.data.bones.get(name)
        if bone is None:
            continue
        rest_position, rest_rotation = mapping.rest[b]
        position, rotation = posed[b]
        turn = rotation @ rest_rotation.inverted()  # the joint's turn from its rest pose, world axes
        target = turn.to_4x4() @ bone.matrix_local.to_3x3().normalized().to_4x4()
        target.translation = position if bone.parent is None else Vector()
        targets[name] = target
        parent = bone.parent
        if parent is None or parent.name not in targets:
            basis = bone.matrix_local.inverted() @ target
        else:
            # Child bones keep their rest offset from the parent (any armature's proportions).
            relative = parent.matrix_local.inverted() @ bone.matrix_local
            parent_pose = targets[parent.name].copy()
            basis = relative.inverted() @ parent_pose.to_3x3().to_4x4().inverted() @ target.to_3x3().to_4x4()
            basis.translation = Vector()
            target.translation = (parent_pose @ relative).translation
        obj.pose.bones[name].matrix_basis = basis


_state: dict = {}


def _tick() -> float | None:
    link = _state.get("link")
    if link is None:
        return None
    if link.hello is not None and link.frame is not None:
        if _state.get("hello") is not link.hello:
            _state["hello"], _state["mapping"] = link.hello, Mapping(link.hello)
            active = bpy.context.view_layer.objects.active
            usable = (
                active is not None
                and active.type == "ARMATURE"
                and any(name in active.data.bones for name in link.hello["bones"])
            )
            _state["armature"] = active if usable else build_armature(link.hello)
        if _state.get("applied") is not link.frame:
            apply_frame(_state["armature"], _state["mapping"], link.frame)
            _state["applied"] = link.frame
    return 1.0 / 60.0


class LIVERIG_OT_connect(bpy.types.Operator):
    """Connect to the node's WebSocket stream and drive an armature."""

    bl_idname = "liverig.connect"
    bl_label = "Connect"

    def execute(self, context):
        if "link" in _state:
            _state.pop("link").stop()
        _state.clear()
        _state["link"] = Link(context.scene.liverig_url).start()
        bpy.app.timers.register(_tick)
        return {"FINISHED"}


class LIVERIG_OT_disconnect(bpy.types.Operator):
    """Stop receiving (the pose stays as it was)."""

    bl_idname = "liverig.disconnect"
    bl_label = "Disconnect"

    def execute(self, context):
        if "link" in _state:
            _state.pop("link").stop()
        return {"FINISHED"}


class LIVERIG_PT_panel(bpy.types.Panel):
    bl_label = "liverig live link"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "liverig"

    def draw(self, context):
        layout = self.layout
        layout.prop(context.scene, "liverig_url", text="")
        link = _state.get("link")
        row = layout.row()
        row.operator("liverig.connect")
        row.operator("liverig.disconnect")
        if link is not None:
            layout.label(text=link.error or f"{link.frames} frames")


CLASSES = (LIVERIG_OT_connect, LIVERIG_OT_disconnect, LIVERIG_PT_panel)


def register() -> None:
    bpy.types.Scene.liverig_url = bpy.props.StringProperty(name="Stream", default="ws://127.0.0.1:8765")
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    if "link" in _state:
        _state.pop("link").stop()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    del bpy.types.Scene.liverig_url
