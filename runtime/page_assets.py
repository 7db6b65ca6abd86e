"""The browser page's JavaScript libraries: three.js and @pixiv/three-vrm, vendored from npm.

Users have no Node.js build step, so the page uses the packages' prebuilt ES module builds and an
import map (runtime/page/index.html). The tarballs are fetched once from the npm registry at pinned
versions, checked by SHA-256 (core/fetch.py) and the few files the page imports are copied into
the git-ignored cache, from where the page server serves them: nothing is fetched at run time.

Setup command (also run on the first `--out page://...`):  python -m liverig.runtime.page_assets
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from liverig.core.fetch import FetchError, cache_dir, extract, npm_pack


@dataclass(frozen=True)
class Vendored:
    """One npm package: its pin and the members the page imports (served under /vendor/<folder>/)."""

    package: str
    version: str
    sha256: str
    folder: str
    members: tuple[str, ...]
    licence: str


PACKAGES = (
    Vendored(
        "three",
        "0.187.0",
        "ff540832ded0cfe919764d24a3d88f3e2a05f23303f876423e4f893841e90728",
        "three",
        (
            "build/three.module.js",
            "build/three.core.js",
            "examples/jsm/loaders/GLTFLoader.js",
            "examples/jsm/utils/BufferGeometryUtils.js",
            "examples/jsm/utils/SkeletonUtils.js",
            "examples/jsm/controls/OrbitControls.js",
            "LICENSE",
        ),
        "MIT",
    ),
    Vendored(
        "@pixiv/three-vrm",
        "3.5.5",
        "6f0102f987bc8abc9b9e78ef5b3259ea9f0dc51e30bf51d32aea6218394ea755",
        "three-vrm",
        ("lib/three-vrm.module.min.js", "LICENSE"),
        "MIT",
    ),
)


def vendor_root() -> Path:
    """The folder served as /vendor/: one subfolder per package, filled from npm if incomplete."""
    root = cache_dir("page", "vendor")
    for package in PACKAGES:
        folder = root / f"{package.folder}@{package.version}"
        if all((folder / member).is_file() for member in package.members):
            continue
        tarball = npm_pack(package.package, package.version, package.sha256)
        for member in package.members:
            partial = folder / (member + ".partial")
            extract(tarball, f"package/{member}", partial)
            partial.replace(folder / member)  # a broken copy never looks complete
    return root


def import_map() -> dict[str, dict[str, str]]:
    """The page's import map: bare module names -> the vendored files' URLs."""
    three, vrm = (f"/vendor/{p.folder}@{p.version}" for p in PACKAGES)
    return {
        "imports": {
            "three": f"{three}/build/three.module.js",
            "three/addons/": f"{three}/examples/jsm/",
            "@pixiv/three-vrm": f"{vrm}/lib/three-vrm.module.min.js",
        }
    }


def main() -> int:
    try:
        root = vendor_root()
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for package in PACKAGES:
        print(
            f"page   {root / package.folder}@{package.version}: npm {package.package}@{package.version} "
            f"(sha256 {package.sha256[:12]}...), {package.licence}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
