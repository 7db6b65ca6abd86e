"""The extended mocap corpus: CMU motion held in public GitHub repositories, pinned file by file.

The package registries hold under three minutes of licensed mocap (`models.training.mocap`). Public
repositories hold much more, but only as copies of copies, so each file here is pinned by repository,
commit, path and the SHA-256 of its bytes, with the licence read from the repository itself and the
terms of the original capture (CMU: free for any use, redistribution allowed, no reselling as is).

    python -m liverig.models.training.mocap --corpus            # downloads raw.githubusercontent.com
    python -m liverig.models.training.mocap --corpus --from-dir /work/.mirror   # local snapshots

`--from-dir` takes a folder of repository snapshots (`owner+name/` as `fetch` leaves them, a bare git
directory or a work tree; or one snapshot itself) and reads each file at its pinned commit; the bytes
are checked against the same SHA-256 either way, then kept under `cache_dir("mocap", "raw", source)`,
so later runs need neither the network nor the snapshot.

Splits go by performer: a performer (a CMU subject, or where a repository renumbered the takes, the
group of takes one performer gave) never feeds two splits. Near-duplicate takes (the same capture
converted twice, or its left-right mirror) are dropped by `deduplicate` before the hours are counted.
"""

from __future__ import annotations

import hashlib
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liverig.core import fetch
from liverig.core.skeleton import BONES, JOINT_INDEX, mirror_joints


@dataclass(frozen=True)
class RepoSource:
    """One public repository at one commit, with the licence its own text gives."""

    key: str  # short id used in clip names and the cache folder
    repo: str  # owner/name on GitHub
    commit: str  # 40 hex digits
    licence: str  # the repository's licence, and the data's own terms
    licence_path: str | None  # the licence file inside the repository, if it has one
    rig: str  # key of the Rig in mocap.RIGS that reads its BVH files
    prefix: str  # the folder of its files inside the repository (PINS give paths below it)
    note: str = ""
    cmu_takes: bool = False  # its file names are CMU take ids (`02_01`), which de-duplication uses
    tpose_frame: bool = False  # its BVH files open with a T-pose frame that is not motion (dropped)


@dataclass(frozen=True)
class RepoFile:
    """One pinned file of a RepoSource, and where its clip goes."""

    name: str  # the clip's name (unique over the whole corpus)
    source: str  # RepoSource.key
    path: str
    sha256: str
    subject: str  # the performer; a performer never straddles two splits
    activity: str  # one of CATEGORIES' activities
    split: str
    fps: float | None = None  # the true frame rate where the file's "Frame Time" is known to be wrong
    take: str | None = None  # the CMU take (`02_01`) where the file name says it


# The CMU database's terms (mocap.cs.cmu.edu, "Use this data!" and the FAQ), which every source below
# inherits: free for research and commercial projects, may be copied, modified or redistributed
# without permission; not to be resold as is; acknowledgement requested.
CMU_TERMS = "CMU Graphics Lab Motion Capture Database terms: free for any use, not to be resold as is"

SOURCES: dict[str, RepoSource] = {
    s.key: s
    for s in (
        RepoSource(
            "acrnn",
            "papagina/Auto_Conditioned_RNN_motion",
            "fbb7f6414035fc5c6752e1c21b8d8c1f777b0eb8",
            f"MIT (repository) + {CMU_TERMS}",
            "LICENSE",
            "cmu_daz",
            "train_data_bvh/",
            "cgspeed's Daz-friendly BVH release of CMU: salsa (two partners, 60 fps though the header "
            "says 120, as train_data_bvh/readme.txt notes), martial arts and Indian dance (120 fps)",
        ),
        RepoSource(
            "bvh11",
            "yuki-koyama/bvh11",
            "c9072174fe89e0bf9776a092179b464ea39975e5",
            f"MIT (repository) + {CMU_TERMS}",
            "LICENSE",
            "cmu_max",
            "resources/",
            "cgspeed's 3dsMax-friendly BVH release of CMU subject 131 (resources/README.md), 120 fps",
            cmu_takes=True,
        ),
        RepoSource(
            "przestr",
            "Przestr/motion-capture",
            "c200c31036a2b8cd2182ddbc85756b2dd79d70d2",
            f"no licence of its own (cgspeed's Daz-friendly BVH of CMU subjects 02-16); {CMU_TERMS}",
            None,
            "cmu_daz",
            "data/",
            "120 fps; subject 16 is left out (another converter's skeleton, 30 fps)",
            cmu_takes=True,
        ),
        RepoSource(
            "cmuamc",
            "cyun9601/CMU-MOCAP-Data",
            "2bedcd3b002488f7053d2b8c42690beddbf6620a",
            f"no licence of its own (the files are CMU's original ASF/AMC, unchanged); {CMU_TERMS}",
            None,
            "cmu_amc",
            "data/CMU/asfamc/subjects/",
            "CMU's original ASF/AMC files of subjects 01-03 (120 fps); subject 01 is left out: the registry "
            "clips already use it",
            cmu_takes=True,
        ),
        RepoSource(
            "mview",
            "chrystianosaraujo/motion-viewer",
            "6d7ca60c300f123528be0fd0939cf7a584a13f65",
            f"no licence of its own (cgspeed's MotionBuilder-friendly BVH of CMU 01-09); {CMU_TERMS}",
            None,
            "cmu",
            "data/",
            "120 fps, CMU units; each file opens with a T-pose frame. Only the takes no other source holds "
            "are pinned (05_02-20 modern dance, 06_02-15 basketball, 09_12); subject 01 is left out (the "
            "registry clips use it)",
            cmu_takes=True,
            tpose_frame=True,
        ),
    )
}


# One pinned file a line: source, path below the source's prefix, SHA-256, performer, activity, split
# and, where the file's Frame Time is wrong, the true fps.
# acrnn salsa: takes 01-15 and 16-30 are the two partners of the same dances (equal frame counts, take by
# take); both partners stay in train, so no split holds the other half of a dance another split has.
# Files of 4 MiB and more (acrnn salsa 08, 23; Indian 01-03, 05, 09-12; martial 01-02) are not pinned:
# the snapshot this table was made from lacks them, so their checksums could not be taken here.
PINS = """
acrnn salsa/01.bvh e54cdd79f5457acf8d28b59391f6d197be15d7eb0e715672f42b9791713813e4 cmu60 dance train 60
acrnn salsa/02.bvh cf51b63c0a2e6d774bf5b08e1d57908fad3ad9b30eda70ba6ea7e141040047ba cmu60 dance train 60
acrnn salsa/03.bvh 361ae3b34365e679421a300c8f52d0ab5a2e516347f7a641e113c2c5a9f272e8 cmu60 dance train 60
acrnn salsa/04.bvh af9684a55b0c58ff1f63022a66599a8af4f9a969a15a91df1c59c740d5461202 cmu60 dance train 60
acrnn salsa/05.bvh f365536b557dabec988d99a95e18bc242c291f5941b1c988af85a0a92506de92 cmu60 dance train 60
acrnn salsa/06.bvh e177a090162874bd6a240ab2cc55ba464e13f8eddb72ae08b6896dd5a77d634c cmu60 dance train 60
acrnn salsa/07.bvh 41f3e9fb7bcd390ff9d4cba9eca726d0b9feb637b85d1036fddc9a29ea82dbae cmu60 dance train 60
acrnn salsa/09.bvh 5ee80e5fa1f637b16e2efa965904626ae47f56ad3c18706ad63cd8e6e5796493 cmu60 dance train 60
acrnn salsa/10.bvh 104916ea9b675440877967a885d80b886fa7370b85c393a59944711b16f787b7 cmu60 dance train 60
acrnn salsa/11.bvh 49fe88d86b5414f5ca277f2986514a289080c15bb6bf644c66b01f4a05b2682e cmu60 dance train 60
acrnn salsa/12.bvh 3bd910f9b2ea9a7837584dba95d83e96894a524976cb2047ce438370f18bb7ed cmu60 dance train 60
acrnn salsa/13.bvh 4a6c59246da5546fcb84e7a40e24a1dc8b60283d71df252443c1d3cfdd0fe701 cmu60 dance train 60
acrnn salsa/14.bvh 507ae5861813fd7f5330cb78f310fe69323b3009867d24a6b135b6a9e6b36f36 cmu60 dance train 60
acrnn salsa/15.bvh a0796288a4c17d75c0053a23d9bf57ef07c578780e823509d3256fb40694e120 cmu60 dance train 60
acrnn salsa/16.bvh fa1fe3453387f46b294721bc8f32066028a1c68ac9661b83da3e2d335b5fd972 cmu61 dance train 60
acrnn salsa/17.bvh 6c3c74ac6f44c7b4591b0121e4fbdafff30d3287a8ec3292dd02a862a12afd4f cmu61 dance train 60
acrnn salsa/18.bvh 126b9d6c262db94a931fdea2762cca27ce046f4b2183d4cecefeb1dd6d12aa86 cmu61 dance train 60
acrnn salsa/19.bvh a867a6d5e18057718ab8a928bc6189cb3ef03ba022cca5d862954c9313c7dede cmu61 dance train 60
acrnn salsa/20.bvh 4e2e1a1b4163cadb49c5832a02591f5185dcbb5bf9d04f81998d813efce955fa cmu61 dance train 60
acrnn salsa/21.bvh a31877b03ecd5aff9ca7ffb148ebbfb434e2d2359f3e97f448e9f9c8b371fd79 cmu61 dance train 60
acrnn salsa/22.bvh 558207e76b1cb39e3eab47d4ebb3c91bd390e68fa8f971a558b0369bed929588 cmu61 dance train 60
acrnn salsa/24.bvh 0846f255ed9b26baf8a59d50f50761cb703af2558922116d315fa3ceb2121fe3 cmu61 dance train 60
acrnn salsa/25.bvh cc96d1f48b9ad4b41f71b2ca7dbd8b73637007271c89cd4f2f43383257bddcec cmu61 dance train 60
acrnn salsa/26.bvh 0a4c63f87b30b8134647b47278c427a6dfaf3c513a05eac6fb5e4374d84a33fa cmu61 dance train 60
acrnn salsa/27.bvh 1990cbc19364fbc869feb64d23e01d3163f58c9f68b5a8831b0305615db8edaf cmu61 dance train 60
acrnn salsa/28.bvh 4f9cefe6d10402feaf59ce45b25617430d7643d81a4a0ed20ce31a740521d335 cmu61 dance train 60
acrnn salsa/29.bvh 3e6c363427001d89377fb90c6d821cd37694d5775b96d735275c28e950c1d1e1 cmu61 dance train 60
acrnn salsa/30.bvh 123025b09d93d331c765cc833cdbe572b46a08a7d3626ce33473e452993bc836 cmu61 dance train 60
acrnn indian/04.bvh 21b509fbb82f06e5aeeb2b770e13148dec9d7ff5645595cbdec2504e8d7464e9 indian dance val
acrnn indian/06.bvh bf6c43e9a154c24c4e789d9a5de4439478acd404ed336eacc19174fc2030cd62 indian dance val
acrnn indian/07.bvh 652a13e2a80ba173d9c448c7e607c00de9272e7e02d27ec3cb6d0b4cb126cc7c indian dance val
acrnn indian/08.bvh 48cebf7766c22a4294f2dd3e1232f16a5d590b09f57f81af6a8287ecb5e38fc2 indian dance val
acrnn indian/13.bvh 8f9fecb8dc84852323b5bc0ebb50413c413443a89df26747ab73c999395f01fb indian dance val
acrnn indian/14.bvh ac2f908cd68928b9c1080a8379c6d6963f5b3ba65c7be7c568304d320425e9dc indian dance val
acrnn indian/15.bvh b04c70ddddc52c4c1f1cbae56b39420500831615929cbabc881e29ebbe2a9450 indian dance val
acrnn martial/03.bvh 265d7093c73cf109a3fc1dc2173f081a92f2e15ba6da5433fad507b3feafa5f5 martial martial test
acrnn martial/04.bvh 2fe360667b21418a9de835e04c1a3f11d8ec16248f121b2ab2b433b0c5f3e5ab martial martial test
acrnn martial/05.bvh 62360d44e070765cc5e6f02769adfebec13ecc0079ce95e29926433471dae313 martial martial test
acrnn martial/06.bvh a1cabaf72836e806fd21ddb2f8a2e7b121e7e165b65629da4942d8980fd6758c martial martial test
acrnn martial/07.bvh 297f9c254fd740dfa7007a44f6f1615c70cedf864fe8ce10da29e483e4034670 martial martial test
acrnn martial/08.bvh e464c7e9c63de504aec294a8b417606cf0ba7df4ee79896743a13990f30ab2c9 martial martial test
acrnn martial/09.bvh 93284f244ca540d36c0ca429cae1fb36fdb24e5afe325e3535ec31dd8667917f martial martial test
acrnn martial/10.bvh dd7313173e06eb59192f5516f283504c3c7201ee1fe47ecf0d39098eda8d7e8f martial martial test
bvh11 131_01.bvh 525a261b085d44ea302205f7bbdf824c20ca8256b9e0797aeae43183326fce27 cmu131 walk train
bvh11 131_02.bvh fe7882961ae1ecaf62273424a7ac64905fd20b0596051c78f3d1488dfa66d708 cmu131 walk train
bvh11 131_03.bvh f8b19d31da5d596e523c9bab7ace69756afd02c38f61e5cac3141e5b579dbb4a cmu131 walk train
cmuamc 02/02.asf c9f5ff45b4437b279f58b95dacf017afd3135373096274df69436a9354d796cf cmu02 skeleton -
cmuamc 02/02_01.amc 1503c481f4726e640c77888f0c841dd3be0694684bcd32296cf53685c6fc1492 cmu02 walk test
cmuamc 02/02_02.amc 2ece9e0c7791c5c0fef5a951eccfe7e985caeb734667b1d1ea089cfedffd8a6e cmu02 walk test
cmuamc 02/02_03.amc 07df256876f0941ea464083162503790a05ffa021fd6d6d5b2c22ac98127762a cmu02 run test
cmuamc 02/02_04.amc 77a6885616eb91a76304149a42575cb8479ef9dd118b329e4d1de6046766491f cmu02 jump test
cmuamc 02/02_05.amc b370aae1972be9bf73d49a6c94ca74dda01a5cb5ab2f4cce7f61d4d08ca9a611 cmu02 punch test
cmuamc 02/02_06.amc 410294c104bf6c4cbcc7f5757e8a24d012beca0090ab96779b7b1611d5a3fdc1 cmu02 everyday test
cmuamc 02/02_07.amc 6171216b0bd691843096798431a5f201b9d1340503cf89ce20180b6143597cd8 cmu02 sports test
cmuamc 02/02_08.amc cbf08bb1aeba0487330b0096adb634170f6ddc617c19349b8954a99904a19634 cmu02 sports test
cmuamc 02/02_09.amc a217c49c4d3e834b9a7da1ccaffb12f0b8aeed9b7c90c114b365e5f3d265a6df cmu02 sports test
cmuamc 02/02_10.amc f056eb4d3014192d4652fdf2bd089a2b7df949f84d6704f0efaad661b63d0f08 cmu02 everyday test
cmuamc 03/03.asf 5497a50139b2757576b476e571f7a80ff396d65b90e5b8b53e55a556c2eaaddc cmu03 skeleton -
cmuamc 03/03_01.amc 5230fb02f18ba1cf4379f55237f05c205965acc378fa41852219ae241e6fcce1 cmu03 walk train
cmuamc 03/03_02.amc 29e72183fe0947cd8d0698d00aa451002208c77b277f4654b9b952da03d20921 cmu03 walk train
cmuamc 03/03_03.amc aaecebbfa029d8868c157cd88a1404e648bd27a9c22831723d700c2fc9a171b3 cmu03 walk train
cmuamc 03/03_04.amc bbe54afc974e23e44da45051374c18b11f71402b9030308f19edad56871f7614 cmu03 walk train
przestr 02/02_01.bvh 2849cb1930ca2465bd30c48c22be298e6dab30461d250f7e7c622f788165d7fc cmu02 walk test
przestr 02/02_02.bvh c43cc5c2265d473b3ea3940557108b00efb87984be440afcacb5c6e6cb1cb1a8 cmu02 walk test
przestr 02/02_03.bvh cdd10cca8f3e3686aadaf1a9ce942f68f44e0643b73e89d3033bc0902841e38a cmu02 run test
przestr 02/02_04.bvh a7c0903f0cf1cf425e61a9c8a5064cd9739e9d609e4c77cc320d885ee4336409 cmu02 jump test
przestr 03/03_01.bvh 1d84c6357b20388081eaf1c4471cb3d7cb9687dbce825bcb53b826dcee25a9d9 cmu03 walk train
przestr 03/03_02.bvh ffb7cdb1e44528d312c1780d8cff7662efe4ad4945ff4f90897c28c5bb50602e cmu03 walk train
przestr 05/05_01.bvh 6f8ac721348bc843fa88ad7be8eae47e299e0cf3a187c7fbddf0302af6d7c8c1 cmu05 walk train
przestr 06/06_01.bvh 6429f67e3a1f44868d2bb3edc35e8fbca78f38e2e7ac9c63fd4dad1151485e6e cmu06 walk train
przestr 07/07_01.bvh 3f6f93a5a704e8d88d181f11084e6f7c1843f68ca62ca0db6c35c77340b745ba cmu07 walk train
przestr 07/07_02.bvh 961406c26fa416bc9c6d48db5b945b733de0af5a2c5a785b5f698dac84717887 cmu07 walk train
przestr 07/07_03.bvh 76bb20973ed75a2a8192112491d23ea206f6dde867ab74439b0684af9d017c78 cmu07 walk train
przestr 07/07_04.bvh 972a40bf38f9707531e99a92beb1439fa2a836ba8adae794a9298d1bf90ebb72 cmu07 walk train
przestr 07/07_05.bvh e1c885b6784b1af77178e71efead3e0b3041c528bb99b580a42a53d9cfdd0fc8 cmu07 walk train
przestr 07/07_06.bvh 0fac72648b62e3291bdfed2813c9218f50dc6503e601f7f02d0f3e2d2086e187 cmu07 walk train
przestr 07/07_07.bvh 3b591a2e824cfdb1cdb52b8b457d4e4d369b03c166ee437739ff84cd7202ba2f cmu07 walk train
przestr 07/07_08.bvh 9753a4780236b92cdfdade01cc4b8c6c380a302765ef72458a248f20ae2f93ac cmu07 walk train
przestr 07/07_09.bvh ba728a20a312ab01efc151f242aa2f979db98447e520b36f2953b96958a59576 cmu07 walk train
przestr 07/07_10.bvh 046a138a070b5a7588e8962efaa2aa0a76959850a18cfe30729c3e6ec3f58e0b cmu07 walk train
przestr 07/07_11.bvh cc6f42caa9dfebf969b9675f129a17d4a8945584c74bfaae1269d198bdba7e11 cmu07 walk train
przestr 07/07_12.bvh d65518c512f58ee8b612b0a8bb57ddd7161d5a775d85c6e2af4199e19dc7029f cmu07 walk train
przestr 08/08_01.bvh 35c0823a33d612b96effe524fb7abc777afa90a80280b3bd1f4bbc15a834bee8 cmu08 walk val
przestr 08/08_02.bvh e0f4491a298d29ae7a33ecbec23369a2c8c7cf90a85c4b86871d25777b9432d6 cmu08 walk val
przestr 08/08_03.bvh 05f8e918065e1de40666216e067743a8a973c0b6439a73408706a45d7b31df28 cmu08 walk val
przestr 08/08_04.bvh 23bb5db6ecedadc2ca41e468266db85940a5dc3e6bd230db866d5fab4fae0074 cmu08 walk val
przestr 08/08_05.bvh c8283f1dce08b3569cb7f0bf2c44299e6b93812ca9206fff84d52f6d7ca4fe69 cmu08 walk val
przestr 08/08_06.bvh 9f177e1f75e86e4c29ed65bf5b742c73b35d090032a536ca0dc8a58dc3694100 cmu08 walk val
przestr 08/08_07.bvh 731e209816d37fa1e096734efc7f66152a6bf2ec77a768f39d4503ace309e8c2 cmu08 walk val
przestr 08/08_08.bvh 464a393af057e55a91c3129505a3a1159835a5a4e13815f2aca2eb3806b5bd96 cmu08 walk val
przestr 08/08_09.bvh 326e47503e69bf571b90e7d010e209365a95b57541388c6b5767ffacc4addcbb cmu08 walk val
przestr 08/08_10.bvh faf5bf28b8a36ef7cf15873f65ae5593c0716582d212404e318498ff551c4d4f cmu08 walk val
przestr 08/08_11.bvh 1bbbbb50f4fd01212170c184e382af071299490b20cd4ce81b8917bb7a7fde4b cmu08 walk val
przestr 09/09_01.bvh 310a523409302100d03cfdd1211a7427d0da4a54e4f480f3f275c5d43db0dffb cmu09 run train
przestr 09/09_02.bvh 648570d6c7d24cd5bcdb02fdd1f1eb8def461c79174725a7d713a1a272a497e3 cmu09 run train
przestr 09/09_03.bvh 82e4472ff26d587c6ef0c542c02560a840b57e90c7357ee32ff36ed08b4228cd cmu09 run train
przestr 09/09_04.bvh 2371c1efafe494fbbbaa48d52699104983d518f02a0c12f9834bf5ce7f3d4bd8 cmu09 run train
przestr 09/09_05.bvh ab97e33940859fdc5ac1a293709981a3836c9f7069d4b817e95e5be39181974d cmu09 run train
przestr 09/09_06.bvh 11251d1ac3398e57aee32ee24bf876700fadca49fec676abe30340122caecf01 cmu09 run train
przestr 09/09_07.bvh cb709fb97b7b8af3e8c35b579bbfd95cac200074933225257a40edcebfdc6a20 cmu09 run train
przestr 09/09_08.bvh 07fd89f96c2a63f3966804b83e3f3295ccc0187eb7e433e08505350d8855d80e cmu09 run train
przestr 09/09_09.bvh 4d2c61034b4486e2f7fa612e10c0e56c50aea113f2d6edca6fa1767fad1870f6 cmu09 run train
przestr 09/09_10.bvh aa0d29e4f4547714c2159356ca83b048d5e81133170218785ec1abfcf490ae84 cmu09 run train
przestr 09/09_11.bvh 46e739463c18ca46651af572ae3703813f54d51ae355b3b42f3a5fb133ac2fa5 cmu09 run train
przestr 10/10_04.bvh 0caf383294b70286c49443631aa094275d9e8254fd276f606cbab6982e4f1166 cmu10 walk train
przestr 12/12_01.bvh de4a5c15318d47c6634438261745e18ebb2a98bb11bf46cf0986eb8bc0702fc0 cmu12 walk train
przestr 12/12_02.bvh ee2d54ac80a4f96e78dd8a71dca3919aec11ece478d97332e75f8d58bb3eebd1 cmu12 walk train
przestr 12/12_03.bvh d208d6929a1d5ef93eccecfa8fd710c47cd42eed9480e4f667ec98d873fb9e21 cmu12 walk train
przestr 13/13_10.bvh 9c5c646179c6f4f2504d7c3c9c1d9f93d43cd851a54457c8fe57088d3cef7d87 cmu13 everyday train
przestr 13/13_11.bvh 79b9731f10303347dadd2470662fa9a26a424099010572ecdfd7b28983c587d6 cmu13 jump train
przestr 13/13_13.bvh 4a099e3367b8940ce8870cba2a4b1831691e80a18e08555de3fe035b1c369cdb cmu13 jump train
przestr 13/13_32.bvh 778be2ecc7c8e5f5493aa53de03a61fc801d9945a6353cf0bc7129cb9e316892 cmu13 jump train
przestr 13/13_39.bvh 66457118bd89148b2a9d8c15aa3103bf9c20ce3ad6c990c150523df13885c02f cmu13 jump train
przestr 13/13_40.bvh ad3fcadf440080e5d2ec51c0dce9e37cb2703c89263cfc8844df401f0d85ce91 cmu13 jump train
przestr 13/13_41.bvh 785cde41eafdb2ced2a1965a24b090c506a9af6f1b58968acc6d8dfef5cf3c17 cmu13 jump train
przestr 13/13_42.bvh 11fa64f2a6bb425b98c981521210e4306119d9c532249dfe142ac31a9c99fde3 cmu13 jump train
przestr 14/14_07.bvh fcc92043e4e1f85e9239c58c2419c02ebf6b781a50945cb619779ea07377cd24 cmu14 everyday train
przestr 14/14_08.bvh 11f641de7faa42e79b5925f4fe41ea6fadf48d51e2f7024f1648bfce3af838fa cmu14 everyday train
mview 05/05_02.bvh bd70b2bd823fbe81d7006575e7f9a8d9811935f4042fc2812d01d3344c630694 cmu05 dance train
mview 05/05_03.bvh 8d58553dc00c6a41602a8a2c613e9e4a997dc7cb4c1465a75ad4cf2cb5551a74 cmu05 dance train
mview 05/05_04.bvh adff39ebc38af5cce97ba90414b70fab550fdfb9bceb8b2a3d1a444b9bec411d cmu05 dance train
mview 05/05_05.bvh 8398a28b2bc7d989c154566cd99183eda2aff1fd32be12b21f286f02bd86367f cmu05 dance train
mview 05/05_06.bvh 6b312a5bf78e09c619cc3af95ac3d9ef60f45f5a4bf6035078242b0c0835c5e5 cmu05 dance train
mview 05/05_07.bvh d1387845083b92bcb67102942a6a6c351b20390fc83bd56ccec286a9aebd4685 cmu05 dance train
mview 05/05_08.bvh ec4d6a2c8f7b0bcde45713c16ed63ff8a7149916f2f466d5c0db73770c656cf5 cmu05 dance train
mview 05/05_09.bvh 41cffc2ef4da037e4af999c1a3590b70516d15895a5c81f226ce1512fb1f42ea cmu05 dance train
mview 05/05_10.bvh d2e5dbcc44f47a647bae77b89b5b8c6ab7d32acc564f7f155c3b6ee4e96de905 cmu05 dance train
mview 05/05_11.bvh 7920f0ff00fa9a5e8353b702d9ab60ebfa18f77c2a9147f3e9b0601814e8d2e8 cmu05 dance train
mview 05/05_12.bvh 17f52d6a01c5183ef1f54167335ff7dc90e51ede30605e6928e0bb2a9420ce55 cmu05 dance train
mview 05/05_13.bvh 43b69e1c0d1d5370a263a63e57cd53da810147932acd235314534d799d37e643 cmu05 dance train
mview 05/05_14.bvh a3e1a5ac54adcc45b6b4db95db22243837a7e110f7fe0d0400c5519ded4cad7c cmu05 dance train
mview 05/05_15.bvh 2a19c81134bf7fb5e8c12a67d08c08889394b17e8648b3be5739100314d528f1 cmu05 dance train
mview 05/05_16.bvh e36737318343d742b6fef4c8c402728eba4f4dad224f9a0fddbceb710933dd68 cmu05 dance train
mview 05/05_17.bvh 1e8ec5dd1cb6fee06463c1efc5574f9c4b2e10ee45d751559e932c62dfa83862 cmu05 dance train
mview 05/05_18.bvh 339f17d29260c9286c94e1c441c0db56cc525bbd7676f01bdd257e7c45fc99c3 cmu05 dance train
mview 05/05_19.bvh d78ab39d21a804d14815c3b26f9ed15e0a5a6c3f261485ab2b98ff04d5718019 cmu05 dance train
mview 05/05_20.bvh f6d06fbbfc2a0230ab25eeb429de3deb51e515c8dcf137f7bfbc54521479a8e6 cmu05 dance train
mview 06/06_02.bvh 4afaa8c4fb2f05eb81cc0e8680868b5bacc61051a289ffe5a2a8515fa3addac4 cmu06 sports train
mview 06/06_03.bvh 6620a623f83f142d7bf48738218b0cbc4565dd539e7a8aff9a8550aca84e4b9c cmu06 sports train
mview 06/06_04.bvh 0a64892ac97404d6b9dcc6da1d37e1f47b915c475d2973a1b72e502846ffcfbd cmu06 sports train
mview 06/06_05.bvh 4932beefdacea483dcd3f6b611563de744e915174621de62c950134553b4bc76 cmu06 sports train
mview 06/06_06.bvh 86c28f93b22625bbf75bb92d1142aa11ebfc3528c34eca0e0fc7a8b248b35e8c cmu06 sports train
mview 06/06_07.bvh 6f59dc9a3ce6ee088ee4f4ceeb5013d835f022e95c65c676c84405160ad1fe0a cmu06 sports train
mview 06/06_08.bvh ade7c85e44684ea5bbab333527fba038671ab52b1dae9bc15cf31fbecf3380d9 cmu06 sports train
mview 06/06_09.bvh d78efeffa7a5f874d867c4b89cd4062ce4b58d5bf179c4a22bcca1b390bede43 cmu06 sports train
mview 06/06_10.bvh d04609952fdcfc165668affaabe042aaa010a813bfc69091a1d42f76a6f01afc cmu06 sports train
mview 06/06_11.bvh 27d80980a625d6b003df82bc6134878690ddf58c0491ea07c3ac8da2162090e6 cmu06 sports train
mview 06/06_12.bvh 0227a32d653a1ba326348be18af755ec7cb41c9f08f2914751d0a96f8db0a1ff cmu06 sports train
mview 06/06_13.bvh 251283b71e639fdf1d6f48e24f5cd9638f9864530ea0230244b23f3303d559fe cmu06 sports train
mview 06/06_14.bvh 61fdaed868cadbc5781eb6727a228fe3b3dd57a7dfe243b783232b14e130c2b3 cmu06 sports train
mview 06/06_15.bvh 8d1a3da69c8f1c4c2e330cddff8e867b0e8f4768248edd73cb04efd3413fcf34 cmu06 sports train
mview 09/09_12.bvh 65d575124a12f44f8aa4d2b9da1d2ea10a65ba24ce083c4ee152b42c727dcaa6 cmu09 walk train
"""


def _parse_pins(text: str) -> tuple[RepoFile, ...]:
    out = []
    for line in text.strip().splitlines():
        source, path, sha, subject, activity, split, *fps = line.split()
        parts = Path(path).with_suffix("").parts
        name = "_".join([source, *(parts[-1:] if "_" in parts[-1] else parts[-2:])])
        rate = float(fps[0]) if fps else None
        take = parts[-1] if SOURCES[source].cmu_takes else None
        out.append(
            RepoFile(name, source, SOURCES[source].prefix + path, sha, subject, activity, split, rate, take)
        )
    return tuple(out)


_ALL = _parse_pins(PINS)
FILES: tuple[RepoFile, ...] = tuple(f for f in _ALL if f.activity != "skeleton")
# ASF skeletons that AMC takes need: {path: pin}. A take's skeleton is `<subject folder>/<subject>.asf`.
SKELETONS: dict[str, RepoFile] = {f.path: f for f in _ALL if f.activity == "skeleton"}


def skeleton_of(spec: RepoFile) -> RepoFile:
    folder = Path(spec.path).parent
    return SKELETONS[(folder / f"{folder.name}.asf").as_posix()]


# Activity -> category, for the hours table (the issue asks for these kinds of motion).
CATEGORIES: dict[str, str] = {
    "walk": "locomotion",
    "turn": "locomotion",
    "run": "locomotion",
    "climb": "locomotion",
    "jump": "sports",
    "boxing": "sports",
    "kick": "sports",
    "punch": "sports",
    "martial": "sports",
    "backflip": "sports",
    "spin": "sports",
    "cartwheel": "sports",
    "sports": "sports",
    "dance": "dance",
    "crawl": "floor",
    "getup": "floor",
    "roll": "floor",
    "crouch": "floor",
    "floor": "floor",
    "gesture": "everyday/gesture",
    "everyday": "everyday/gesture",
    "misc": "everyday/gesture",
}


# ---------------------------------------------------------------------------------------------
# Fetching


class SnapshotError(fetch.FetchError):
    """A file could not be read from a local snapshot."""


def _git_dir(folder: Path) -> Path | None:
    for candidate in (folder / "repo" / ".git", folder / "repo", folder / ".git", folder):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def _from_snapshot(source: RepoSource, path: str, root: Path) -> bytes:
    """The file's bytes at the pinned commit, from a snapshot folder (or a folder of snapshots)."""
    for folder in (root / source.repo.replace("/", "+"), root):
        git = _git_dir(folder)
        if git is not None:
            result = subprocess.run(
                ["git", "--git-dir", str(git), "cat-file", "blob", f"{source.commit}:{path}"],
                capture_output=True,
                check=False,
            )
            if result.returncode == 0:
                return result.stdout
        elif (folder / path).is_file():
            return (folder / path).read_bytes()
    raise SnapshotError(f"{source.repo}@{source.commit[:7]}:{path} is not in the snapshot under {root}")


def raw_url(source: RepoSource, path: str) -> str:
    return f"https://raw.githubusercontent.com/{source.repo}/{source.commit}/{urllib.parse.quote(path)}"


def raw_file(spec: RepoFile, from_dir: Path | None = None) -> Path:
    """The pinned file, verified, from the cache, a local snapshot (`from_dir`) or GitHub."""
    source = SOURCES[spec.source]
    dest = fetch.cache_dir("mocap", "raw", spec.source) / spec.path.replace("/", "__")
    if dest.is_file() and fetch.sha256_of(dest) == spec.sha256:
        return dest
    part = dest.with_name(dest.name + ".part")
    if from_dir is not None:
        part.write_bytes(_from_snapshot(source, spec.path, Path(from_dir)))
    else:
        fetch._http_download(raw_url(source, spec.path), part)
    actual = fetch.sha256_of(part)
    if actual != spec.sha256:
        part.unlink(missing_ok=True)
        raise fetch.FetchError(
            f"checksum mismatch for {source.repo}:{spec.path}: expected {spec.sha256}, got {actual}"
        )
    part.replace(dest)
    return dest


def pin_table(root: Path, source: str, paths: list[str]) -> list[tuple[str, str]]:
    """(path, sha256) of files in a snapshot: how the FILES table was made (a maintenance helper)."""
    src = SOURCES[source]
    return [(p, hashlib.sha256(_from_snapshot(src, p, root)).hexdigest()) for p in paths]


# ---------------------------------------------------------------------------------------------
# ASF/AMC: CMU's own format (a skeleton file per subject, a motion file per take)


@dataclass
class Asf:
    """A parsed ASF skeleton: bones in file order with their rest direction, length, axis and dofs."""

    bones: dict[str, dict]  # name -> {"direction", "length", "axis", "dof"}
    children: dict[str, list[str]]
    root_axis: np.ndarray  # degrees
    root_order: list[str]  # e.g. ["TX", "TY", "TZ", "RX", "RY", "RZ"]


def parse_asf(text: str) -> Asf:
    """The parts of an ASF file that forward kinematics needs (units are the file's own)."""
    bones: dict[str, dict] = {}
    children: dict[str, list[str]] = {}
    root_axis, root_order = np.zeros(3), ["TX", "TY", "TZ", "RX", "RY", "RZ"]
    section, bone = "", None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0].startswith(":"):
            section = words[0]
            continue
        if section == ":root":
            if words[0] == "order":
                root_order = [w.upper() for w in words[1:]]
            elif words[0] == "orientation":
                root_axis = np.array([float(v) for v in words[1:4]])
        elif section == ":bonedata":
            if words[0] == "begin":
                bone = {"direction": np.zeros(3), "length": 0.0, "axis": np.zeros(3), "dof": []}
            elif words[0] == "end":
                bones[bone["name"]] = bone
            elif words[0] == "name":
                bone["name"] = words[1]
            elif words[0] == "direction":
                bone["direction"] = np.array([float(v) for v in words[1:4]])
            elif words[0] == "length":
                bone["length"] = float(words[1])
            elif words[0] == "axis":
                bone["axis"] = np.array([float(v) for v in words[1:4]])
            elif words[0] == "dof":
                bone["dof"] = [w.lower() for w in words[1:]]
        elif section == ":hierarchy" and words[0] not in ("begin", "end"):
            children.setdefault(words[0], []).extend(words[1:])
    return Asf(bones, children, root_axis, root_order)


def parse_amc(text: str) -> dict[str, np.ndarray]:
    """AMC frames as {bone or "root": (T, values)} in the order the file lists them."""
    values: dict[str, list[list[float]]] = {}
    for raw in text.splitlines():
        words = raw.split()
        if not words or words[0].startswith((":", "#")) or words[0].isdigit():
            continue
        values.setdefault(words[0], []).append([float(v) for v in words[1:]])
    frames = min(len(v) for v in values.values())
    return {k: np.array(v[:frames]) for k, v in values.items()}


def asf_amc_motion(asf: Asf, amc: dict[str, np.ndarray], frame_time: float):
    """ASF/AMC -> (names, parents, times, local quats (T,J,4), local translations (T,J,3)) for
    `mocap.forward_kinematics`, in file units.

    A bone turns about its own joint by C @ M @ C^-1 (C: its `axis`, M: the frame's dof angles, both
    fixed-axis x-then-y-then-z) and its far end sits `length` along its rest `direction`, turned by
    that rotation. Each bone becomes two nodes: `<bone>` (the rotation, at the parent's far end) and
    `<bone>_end` (its far end), so the standard FK chain reproduces it.
    """
    from scipy.spatial.transform import Rotation

    frames = len(amc["root"])
    names, parents = ["root"], [-1]
    quats = [None]
    trans = [None]
    root_vals = amc["root"]
    t_cols = [root_vals[:, i] for i, c in enumerate(asf.root_order) if c.startswith("T")]
    r_vals = {c[1].lower(): root_vals[:, i] for i, c in enumerate(asf.root_order) if c.startswith("R")}
    c_root = Rotation.from_euler("xyz", asf.root_axis, degrees=True)
    m_root = Rotation.from_euler(
        "xyz", np.stack([r_vals.get(a, np.zeros(frames)) for a in "xyz"], 1), degrees=True
    )
    quats[0] = (c_root * m_root * c_root.inv()).as_quat()
    trans[0] = np.stack(t_cols, axis=1)
    stack = [(b, 0) for b in reversed(asf.children.get("root", []))]
    while stack:
        name, parent = stack.pop()
        bone = asf.bones[name]
        c = Rotation.from_euler("xyz", bone["axis"], degrees=True)
        angles = np.zeros((frames, 3))
        if bone["dof"]:
            given = amc[name]
            for k, dof in enumerate(bone["dof"]):
                angles[:, "xyz".index(dof[1])] = given[:, k]
        m = Rotation.from_euler("xyz", angles, degrees=True)
        names.append(name)
        parents.append(parent)
        quats.append((c * m * c.inv()).as_quat())
        trans.append(np.zeros((frames, 3)))
        names.append(f"{name}_end")
        parents.append(len(names) - 2)
        quats.append(np.tile([0.0, 0.0, 0.0, 1.0], (frames, 1)))
        trans.append(np.tile(bone["length"] * bone["direction"], (frames, 1)))
        stack.extend((b, len(names) - 1) for b in reversed(asf.children.get(name, [])))
    times = np.arange(frames) * frame_time
    return names, np.array(parents), times, np.stack(quats, axis=1), np.stack(trans, axis=1)


# ---------------------------------------------------------------------------------------------
# De-duplication


_CHILDREN = np.array([c for _, c in BONES])
_PARENTS = np.array([p for p, _ in BONES])
DUPLICATE_DEG = 3.0  # mean bone-direction difference below which two clips are one motion (or its mirror)
_SAMPLES = 64


def _signature(joints: np.ndarray) -> np.ndarray:
    """Bone directions (64, bones, 3) at 64 instants spread over the clip: independent of the body's
    size and of where it stands, so one capture retargeted to two rigs still matches."""
    pick = np.linspace(0, len(joints) - 1, _SAMPLES).round().astype(int)
    bones = joints[pick][:, _CHILDREN] - joints[pick][:, _PARENTS]
    return bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-9)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0))).mean())


def duplicate_of(joints: np.ndarray, kept: dict[str, np.ndarray], lengths: dict[str, int]) -> str | None:
    """The name of a kept clip this one repeats (itself or mirrored), else None."""
    mine = _signature(joints)
    mirrored = _signature(mirror_joints(joints))
    for name, other in kept.items():
        if abs(lengths[name] - len(joints)) > 0.1 * max(lengths[name], len(joints)):
            continue
        if min(_angle_deg(mine, other), _angle_deg(mirrored, other)) < DUPLICATE_DEG:
            return name
    return None


def deduplicate(
    clips: list, protected: frozenset[str] = frozenset(), takes: dict[str, str] | None = None
) -> tuple[list, list[tuple[str, str]]]:
    """Clips (in order, earlier ones win) without duplicates, and the (dropped, twin) pairs.

    A clip is a duplicate when it is a CMU take already kept (`takes`: clip name -> take id; the
    same capture converted twice differs by ~10 degrees of bone direction, as much as two walks of one
    performer, so the take id is the reliable key), or when its motion, or its mirror image, matches a
    kept clip's within DUPLICATE_DEG. `protected` clips (the registry clips) are always kept."""
    takes = takes or {}
    kept: dict[str, np.ndarray] = {}
    lengths: dict[str, int] = {}
    seen_takes: dict[str, str] = {}
    out, dropped = [], []
    for clip in clips:
        take = takes.get(clip.name)
        twin = seen_takes.get(take) if take else None
        if twin is None and clip.name not in protected:
            twin = duplicate_of(clip.joints, kept, lengths)
        if twin is not None and clip.name not in protected:
            dropped.append((clip.name, twin))
            continue
        kept[clip.name] = _signature(clip.joints)
        lengths[clip.name] = len(clip.joints)
        if take:
            seen_takes.setdefault(take, clip.name)
        out.append(clip)
    return out, dropped


def takes_of(registry: dict[str, str] | None = None) -> dict[str, str]:
    """Clip name -> CMU take id, for every pinned file that names its take (plus `registry`)."""
    return {**(registry or {}), **{f.name: f.take for f in FILES if f.take}}


def hours_table(rows: list[tuple[str, str, int]], fps: float) -> str:
    """A text table of hours per split and per category from (split, activity, frames) rows."""
    splits = sorted({r[0] for r in rows}, key=("train", "val", "test").index)
    cats = sorted({CATEGORIES.get(r[1], "other") for r in rows})
    lines = [f"{'category':18s}" + "".join(f"{s:>9s}" for s in splits) + f"{'all':>9s}"]
    for cat in [*cats, "all"]:
        cells = []
        for split in [*splits, "all"]:
            frames = sum(
                f for s, a, f in rows if split in ("all", s) and cat in ("all", CATEGORIES.get(a, "other"))
            )
            cells.append(f"{frames / fps / 3600:9.3f}")
        lines.append(f"{cat:18s}" + "".join(cells))
    return "hours\n" + "\n".join(lines)


__all__ = [
    "SOURCES",
    "FILES",
    "CATEGORIES",
    "RepoSource",
    "RepoFile",
    "raw_file",
    "deduplicate",
    "JOINT_INDEX",
]
