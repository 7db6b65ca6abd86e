"""An installed node (`pip install .`) runs from any folder and finds its own configs, rigs, weights
and page: the folders are package data under the `liverig` import name (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.node_support import ROOT


def test_an_installed_copy_runs_from_another_folder_with_its_own_data(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "LIVERIG_CACHE": str(tmp_path / "cache")}
    probe = (
        "import liverig, liverig.core.config as c, liverig.models.backends as b;"
        "from liverig.runtime.rigs import available_rigs, load_rig;"
        "from liverig.runtime.page_assets import vendor_root;"
        "print(liverig.__file__); print(c.load_config().retarget.rig);"
        "print(','.join(available_rigs())); print(len(load_rig('vrm1').bone_names))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    where, rig, rigs, bones = result.stdout.split()
    assert where.startswith(str(target))  # the copy, not this clone
    assert rig == "vrm0" and {"vrm0", "vrm1", "mixamo", "ue5_manny"} <= set(rigs.split(","))
    assert int(bones) > 20
    assert (target / "liverig" / "models" / "weights" / "stcnn.onnx").is_file()
    assert (target / "liverig" / "runtime" / "page" / "index.html").is_file()
    assert (target / "liverig" / "configs" / "recipes" / "shipped.yaml").is_file()  # the training recipes
    shown = subprocess.run(
        [sys.executable, "-m", "liverig", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0 and "--source" in shown.stdout
