"""The extended mocap corpus: the pinned source table, the CMU readers, snapshots, de-duplication."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from liverig.core.fetch import FetchError
from liverig.core.skeleton import BONES, JOINT_INDEX, bone_lengths, mirror_joints
from liverig.models.training import mocap
from liverig.models.training import mocap_corpus as corpus

FIXTURES = Path(__file__).parent / "fixtures" / "mocap"
J = JOINT_INDEX
# Never to feed training here (the independent evaluation holds them back), nor licences that forbid it.
RESERVED = re.compile(r"bandai|three\.?js|mrdoob|mixamo|amass|lafan", re.I)
FORBIDDEN_LICENCE = re.compile(r"\bNC\b|non-?commercial|no-?deriv|\bND\b", re.I)


def _bone(name: str) -> int:
    return [c for _, c in BONES].index(J[name])


def test_source_table_well_formed():
    assert corpus.SOURCES and corpus.FILES
    for key, src in corpus.SOURCES.items():
        assert src.key == key
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", src.repo), src.repo
        assert re.fullmatch(r"[0-9a-f]{40}", src.commit), src.commit
        assert "CMU" in src.licence and src.licence.strip()
        assert src.rig in mocap.RIGS
        assert (
            corpus.raw_url(src, "a b.bvh")
            == f"https://raw.githubusercontent.com/{src.repo}/{src.commit}/a%20b.bvh"
        )
    names = [f.name for f in corpus.FILES]
    assert len(names) == len(set(names)), "clip names must be unique"
    assert not set(names) & {s.name for s in mocap.CLIPS}
    assert len({(f.source, f.path) for f in corpus.FILES}) == len(corpus.FILES)
    for f in (*corpus.FILES, *corpus.SKELETONS.values()):
        assert f.source in corpus.SOURCES
        assert f.path.startswith(corpus.SOURCES[f.source].prefix)
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.path
    for f in corpus.FILES:
        assert f.split in mocap.SPLITS
        assert f.activity in corpus.CATEGORIES, f.activity
        assert f.fps is None or 10 <= f.fps <= 240
        if f.path.endswith(".amc"):
            assert corpus.skeleton_of(f).sha256  # every AMC take has its pinned ASF skeleton


def test_no_reserved_or_forbidden_source():
    for src in corpus.SOURCES.values():
        assert not RESERVED.search(f"{src.repo} {src.note}"), src.repo
        assert not FORBIDDEN_LICENCE.search(src.licence), src.licence
    for f in corpus.FILES:
        assert not RESERVED.search(f.path), f.path


def test_a_performer_feeds_one_split():
    splits: dict[str, set[str]] = {}
    for f in corpus.FILES:
        splits.setdefault(f.subject, set()).add(f.split)
    assert all(len(s) == 1 for s in splits.values()), {k: v for k, v in splits.items() if len(v) > 1}
    # CMU subject 01 feeds the registry clips' train and test splits already: no repository file adds to it.
    assert "cmu01" not in splits
    # The registry's test clips stay as they were.
    assert [s.name for s in mocap.CLIPS if s.split == "test"] == [
        "cmu_01_01",
        "deepmimic_spinkick",
        "deepmimic_roll",
        "deepmimic_turn_left1",
    ]


def test_daz_bvh_fixture_converts():
    """60 frames of CMU 60_xx salsa in cgspeed's Daz-friendly BVH (header says 120 fps, truly 60)."""
    text = (FIXTURES / "cmu60_salsa_head.bvh").read_text()
    joints = mocap.convert_bvh(text, mocap.CMU_DAZ_RIG, fps=60.0)
    assert joints.shape == (30, 22, 3) and np.isfinite(joints).all()  # 60 frames at 60 fps -> 30 at 30
    as_labelled = mocap.convert_bvh(text, mocap.CMU_DAZ_RIG)  # the header's 120 fps: half as long
    assert as_labelled.shape[0] == 15
    lengths = np.median(bone_lengths(joints), axis=0)
    assert 0.25 < lengths[_bone("LeftLowerArm")] < 0.33  # upper arm
    assert 0.33 < lengths[_bone("LeftLowerLeg")] < 0.50  # thigh
    assert 0.06 < lengths[_bone("LeftHandEnd")] < 0.12
    head = joints[:, J["Head"], 1]
    assert 1.35 < np.median(head) < 1.75  # a standing adult's ears
    assert abs(np.percentile((joints[..., 1] - mocap.CONTACT_RADIUS).min(axis=1), 2)) < 1e-4  # floor at 0
    left_of_right = (joints[:, J["LeftUpperLeg"]] - joints[:, J["RightUpperLeg"]]) @ [1.0, 0.0, 0.0]
    assert left_of_right[0] > 0.1  # faces +Z on the first frame, the person's left on +X


def test_motionbuilder_bvh_fixture_drops_its_tpose_frame():
    """61 frames of CMU 09_12 in cgspeed's MotionBuilder-friendly BVH (rig "cmu"): frame 0 is a T-pose,
    not motion; the `mview` source drops it, so no clip opens with arms snapping down from horizontal."""
    text = (FIXTURES / "cmu09_12_mb_head.bvh").read_text()
    assert corpus.SOURCES["mview"].tpose_frame and corpus.SOURCES["mview"].rig == "cmu"
    raw = mocap.convert_bvh(text, mocap.CMU_RIG)
    joints = mocap.convert_bvh(text, mocap.CMU_RIG, skip=1)
    assert raw.shape == joints.shape == (15, 22, 3)  # 0.5 s at 120 fps -> 30 fps, with or without frame 0
    assert np.isfinite(joints).all()

    def hand_below_shoulder(j: np.ndarray) -> np.ndarray:
        return (j[:, J["LeftUpperArm"], 1] - j[:, J["LeftHand"], 1]) / np.linalg.norm(
            j[:, J["LeftHand"]] - j[:, J["LeftUpperArm"]], axis=-1
        )

    assert hand_below_shoulder(raw[:1])[0] < 0.2  # the T-pose: the arm near horizontal
    assert (hand_below_shoulder(joints) > 0.8).all()  # walking: the arm hangs
    lengths = np.median(bone_lengths(joints), axis=0)
    # CMU units (1/0.45 inch): the subject's own bones, an adult's
    assert 0.25 < lengths[_bone("LeftLowerArm")] < 0.36
    assert 0.35 < lengths[_bone("LeftLowerLeg")] < 0.50
    assert 1.35 < np.median(joints[:, J["Head"], 1]) < 1.75
    step = joints[-1, J["Hips"]] - joints[0, J["Hips"]]
    assert 0.2 < np.linalg.norm(step[[0, 2]]) < 1.5  # 0.5 s of walking


def test_new_sources_pin_only_takes_no_earlier_source_holds():
    """`mview` repeats CMU 01-09 that other sources already hold; only the new takes are pinned, each
    performer in the split the earlier sources gave it, and subject 01 (the registry's) not at all."""
    mview = [f for f in corpus.FILES if f.source == "mview"]
    assert len(mview) == 34 and all(f.take and f.path.endswith(f"{f.take}.bvh") for f in mview)
    earlier = {f.take for f in corpus.FILES if f.source != "mview" and f.take}
    assert not {f.take for f in mview} & (earlier | set(mocap.REGISTRY_TAKES.values()))
    split_of = {f.subject: f.split for f in corpus.FILES if f.source != "mview"}
    assert {f.subject for f in mview} == {"cmu05", "cmu06", "cmu09"}
    assert all(split_of[f.subject] == f.split for f in mview)


def test_asf_amc_fixture_converts_and_walks_forward():
    """1.25 s of CMU 02_01 (walk), CMU's own ASF/AMC: the walker moves the way the body faces."""
    asf = corpus.parse_asf((FIXTURES / "02.asf").read_text())
    amc = corpus.parse_amc((FIXTURES / "02_01_head.amc").read_text())
    assert len(asf.bones) == 30 and amc["root"].shape == (150, 6) and amc["lfemur"].shape == (150, 3)
    names, parents, times, quats, trans = corpus.asf_amc_motion(asf, amc, 1 / 120)
    assert (parents[1:] < np.arange(1, len(parents))).all()  # topological: FK can run in order
    quats, trans = mocap.resample(times, quats, trans)
    positions, rotations = mocap.forward_kinematics(parents, quats, trans)
    joints = mocap.normalise_placement(
        mocap.to_canonical(mocap.CMU_AMC_RIG, names, parents, positions, rotations, trans)
    )
    assert joints.shape[0] == 38 and np.isfinite(joints).all()
    lengths = np.median(bone_lengths(joints), axis=0)
    # 02.asf: lfemur 7.59 units, lradius 3.36... at 0.0254/0.45 m per unit
    assert lengths[_bone("LeftLowerLeg")] == pytest.approx(7.59371 * 0.0254 / 0.45, rel=1e-4)
    assert np.ptp(bone_lengths(joints)[:, _bone("LeftFoot")]) < 1e-6  # rigid under motion
    step = joints[-1, J["Hips"]] - joints[0, J["Hips"]]
    assert step[2] > 0.5 and abs(step[0]) < 0.3 * step[2]  # 1.25 s of walking, forward (+Z)


def _clip(name: str, joints: np.ndarray) -> mocap.Clip:
    return mocap.Clip(name, "walk", 30.0, joints)


def test_deduplicate_mirror_take_and_distinct():
    asf = corpus.parse_asf((FIXTURES / "02.asf").read_text())
    amc = corpus.parse_amc((FIXTURES / "02_01_head.amc").read_text())
    names, parents, times, quats, trans = corpus.asf_amc_motion(asf, amc, 1 / 120)
    positions, rotations = mocap.forward_kinematics(parents, quats, trans)
    walk = mocap.to_canonical(mocap.CMU_AMC_RIG, names, parents, positions, rotations, trans)
    rng = np.random.default_rng(0)
    other = walk[::-1] + rng.normal(0, 0.05, walk.shape)  # played backwards and shaken: not the same motion
    clips = [
        _clip("a", walk),
        _clip("mirror", mirror_joints(walk) + [0.3, 0.0, 0.0]),
        _clip("other", other),
        _clip("same_take", other + 1.0),
        _clip("protected", walk),
    ]
    kept, dropped = corpus.deduplicate(
        clips, frozenset({"protected"}), {"other": "02_01", "same_take": "02_01"}
    )
    assert [c.name for c in kept] == ["a", "other", "protected"]
    assert dropped == [("mirror", "a"), ("same_take", "other")]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_raw_file_from_snapshot_folder_and_git(tmp_path, monkeypatch):
    """--from-dir: a plain work tree and a git snapshot at the pinned commit both serve a file, checked
    against its SHA-256; a wrong pin is refused with a one-line error and nothing is cached."""
    monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path / "cache"))
    data = (FIXTURES / "02.asf").read_bytes()
    tree = tmp_path / "snapshots" / "someone+tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "02.asf").write_bytes(data)
    repo = tmp_path / "snapshots" / "someone+git"
    (repo / "sub").mkdir(parents=True)
    (repo / "sub" / "02.asf").write_bytes(data)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    (repo / "sub" / "02.asf").write_bytes(b"changed after the commit")  # the pinned commit must win
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    sources = {
        "tree": corpus.RepoSource("tree", "someone/tree", "0" * 40, "CMU", None, "cmu_amc", "sub/"),
        "git": corpus.RepoSource("git", "someone/git", commit, "CMU", None, "cmu_amc", "sub/"),
    }
    monkeypatch.setattr(corpus, "SOURCES", sources)
    for key in sources:
        spec = corpus.RepoFile(f"{key}_02", key, "sub/02.asf", _sha(data), "s", "skeleton", "-")
        path = corpus.raw_file(spec, tmp_path / "snapshots")
        assert path.read_bytes() == data
        assert corpus.raw_file(spec) == path  # cached: neither snapshot nor network needed again
        bad = corpus.RepoFile(f"{key}_bad", key, "sub/02.asf", "0" * 64, "s", "skeleton", "-")
        with pytest.raises(FetchError, match=r"checksum mismatch for someone/\w+:sub/02.asf") as info:
            corpus.raw_file(bad, tmp_path / "snapshots")
        assert "\n" not in str(info.value)
    missing = corpus.RepoFile("m", "git", "sub/none.amc", "0" * 64, "s", "walk", "train")
    with pytest.raises(corpus.SnapshotError, match="not in the snapshot"):
        corpus.raw_file(missing, tmp_path / "snapshots")


def test_hours_table_sums():
    rows = [("train", "walk", 108_000), ("train", "dance", 54_000), ("test", "kick", 27_000)]
    table = corpus.hours_table(rows, 30.0)
    lines = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert lines["locomotion"] == ["1.000", "0.000", "1.000"]
    assert lines["all"] == ["1.500", "0.250", "1.750"]


def test_corpus_clips_when_cached():
    """The converted repository clips (only where a previous `--corpus` run cached them)."""
    cached = [f for f in corpus.FILES if mocap._clip_path(f.name).exists()]
    if not cached:
        pytest.skip("no repository clip converted yet (python -m liverig.models.training.mocap --corpus)")
    for f in cached[:: max(1, len(cached) // 12)]:
        clip = mocap._load_repo_file(f, None)
        assert clip.joints.shape[1:] == (22, 3) and np.isfinite(clip.joints).all()
        lengths = np.median(bone_lengths(clip.joints), axis=0)
        assert 0.2 < lengths[_bone("LeftLowerArm")] < 0.36, f.name
        assert 0.3 < lengths[_bone("LeftLowerLeg")] < 0.52, f.name
