"""Run inside Blender: `blender -b --factory-startup --python blender/bvh_probe.py -- BVH OUT.json F1 F2 ...`.
Imports a BVH recording with Blender's own importer and write what Blender made of it: the scene's frame
rate, the armature's bones, and every bone's head in world space at the sampled frames (BVH frame F is
Blender frame F + 1). Axes are kept as the file's (forward +Y, up +Z in Blender's terms: no
conversion), so the positions compare with the node's rig directly."""

import json
import sys

import bpy

# Debian's Blender 3.4 runs on Python 3.11, whose open() no longer takes mode "rU", which its BVH
# importer still passes: the importer's module gets an open() that drops the "U" (nothing else changes).
import io_anim_bvh.import_bvh as import_bvh  # noqa: E402


def _open(file, mode="r", *args, **kwargs):
    return open(file, mode.replace("U", ""), *args, **kwargs)


import_bvh.open = _open

args = sys.argv[sys.argv.index("--") + 1 :]
path, out, frames = args[0], args[1], [int(f) for f in args[2:]]
bpy.ops.import_anim.bvh(
    filepath=path,
    axis_forward="Y",
    axis_up="Z",
    update_scene_fps=True,
    update_scene_duration=True,
    frame_start=1,
    use_fps_scale=False,
    rotate_mode="NATIVE",
)
armature = next(obj for obj in bpy.context.scene.objects if obj.type == "ARMATURE")
scene = bpy.context.scene
result = {
    "fps": scene.render.fps / scene.render.fps_base,
    "frames": int(round(armature.animation_data.action.frame_range[1])),  # keys on frames 1..N
    "bones": [bone.name for bone in armature.data.bones],
    "heads": {},
}
for frame in frames:
    scene.frame_set(frame + 1)
    result["heads"][frame] = {
        bone.name: list(armature.matrix_world @ bone.head) for bone in armature.pose.bones
    }
with open(out, "w") as handle:
    json.dump(result, handle)
