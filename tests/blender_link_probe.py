"""Run inside Blender by tests/test_blender_bvh.py: the live-link add-on (blender/liverig_link.py)
receives the node's stream, builds an armature from its hello and poses it with a few frames; what
Blender then shows (every bone's head, world space) is written out with each frame's index.

    blender -b --factory-startup --python tests/blender_link_probe.py -- ADDON_DIR WS_URL OUT.json N
"""

import json
import sys
import time

import bpy

addon_dir, url, out, count = sys.argv[sys.argv.index("--") + 1 :]
sys.path.insert(0, addon_dir)
import liverig_link  # noqa: E402

liverig_link.register()
link = liverig_link.Link(url).start()
deadline = time.monotonic() + 60
while (link.hello is None or link.frame is None) and time.monotonic() < deadline and link.error is None:
    time.sleep(0.05)
if link.frame is None:
    raise SystemExit(f"no frame from {url}: {link.error}")
obj = liverig_link.build_armature(link.hello)
mapping = liverig_link.Mapping(link.hello)
poses, last = [], None
while len(poses) < int(count) and time.monotonic() < deadline:
    frame = link.frame
    if frame is last:
        time.sleep(0.01)
        continue
    liverig_link.apply_frame(obj, mapping, frame)
    bpy.context.view_layer.update()
    heads = {bone.name: list(obj.matrix_world @ bone.head) for bone in obj.pose.bones}
    poses.append({"index": frame["index"], "heads": heads})
    last = frame
    time.sleep(0.25)
link.stop()
liverig_link.unregister()
with open(out, "w") as handle:
    json.dump({"bones": [bone.name for bone in obj.data.bones], "poses": poses}, handle)
