"""Pinned downloads without the network: npm tarballs from a registry served on loopback, and the
errors a fresh machine can meet (a missing tool, a broken or wrong download, no server)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import time

import pytest

from liverig.core import fetch
from liverig.core.fetch import FetchError, apt_download, npm_pack


def _tarball() -> bytes:
    data = b"console.log('hello')\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/index.js")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


TARBALL = _tarball()
TARBALL_SHA256 = hashlib.sha256(TARBALL).hexdigest()


class Registry(http.server.BaseHTTPRequestHandler):
    """Serves TARBALL at npm's address for @scope/pkg@1.0.0; `truncate` cuts the body short."""

    requests: list[str] = []
    truncate = False

    def do_GET(self):  # noqa: N802 (http.server's name)
        Registry.requests.append(self.path)
        if self.path != "/@scope/pkg/-/pkg-1.0.0.tgz":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(TARBALL)))
        self.end_headers()
        self.wfile.write(TARBALL[: len(TARBALL) // 2] if Registry.truncate else TARBALL)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A loopback npm registry named by npm's own environment variable, and an empty cache."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Registry.requests, Registry.truncate = [], False
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path))
    yield tmp_path / "downloads"
    server.shutdown()
    server.server_close()


def test_npm_tarball_comes_from_the_configured_registry_and_is_cached(registry):
    path = npm_pack("@scope/pkg", "1.0.0", TARBALL_SHA256)
    assert path == registry / "scope-pkg-1.0.0.tgz"  # the name `npm pack` gives it: old caches stay valid
    assert path.read_bytes() == TARBALL
    assert npm_pack("@scope/pkg", "1.0.0", TARBALL_SHA256) == path
    assert Registry.requests == ["/@scope/pkg/-/pkg-1.0.0.tgz"]  # the second call was served by the cache
    assert list(registry.iterdir()) == [path]


def test_a_killed_downloads_leftovers_are_cleared_and_a_running_ones_kept(registry):
    """A process killed mid-download leaves its temporary folder; the next fetch removes it once it is
    a day old, and leaves a fresh one (another download may be running) alone."""
    registry.mkdir(parents=True, exist_ok=True)
    old, fresh = registry / "tmpold", registry / "tmpfresh"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "pkg-1.0.0.tgz").write_bytes(TARBALL[:10])
    stale = time.time() - fetch.STALE_DOWNLOAD_S - 60
    os.utime(old, (stale, stale))
    path = npm_pack("@scope/pkg", "1.0.0", TARBALL_SHA256)
    assert sorted(registry.iterdir()) == sorted([path, fresh])


def test_npm_checksum_mismatch_leaves_nothing(registry):
    with pytest.raises(FetchError, match="checksum mismatch for scope-pkg-1.0.0.tgz"):
        npm_pack("@scope/pkg", "1.0.0", "0" * 64)
    assert Registry.requests and list(registry.iterdir()) == []


def test_npm_broken_off_download_leaves_nothing(registry):
    Registry.truncate = True
    with pytest.raises(
        FetchError, match=r"download of http://127\.0\.0\.1:\d+/@scope/pkg/-/pkg-1\.0\.0\.tgz"
    ):
        npm_pack("@scope/pkg", "1.0.0", TARBALL_SHA256)
    assert list(registry.iterdir()) == []


def test_npm_http_error_names_the_url(registry):
    with pytest.raises(FetchError, match=r"/@scope/pkg/-/pkg-9\.9\.9\.tgz failed: HTTP 404") as error:
        npm_pack("@scope/pkg", "9.9.9", TARBALL_SHA256)
    assert "\n" not in str(error.value)
    assert list(registry.iterdir()) == []


def test_npm_without_a_server_is_a_fetch_error(tmp_path, monkeypatch):
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{closed.getsockname()[1]}")
        monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path))
        with pytest.raises(FetchError, match="pkg-1.0.0.tgz failed: .*refused"):
            npm_pack("@scope/pkg", "1.0.0", TARBALL_SHA256)


def test_npm_silent_server_times_out(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "HTTP_TIMEOUT_S", 0.3)
    with socket.socket() as silent:  # accepts connections (the backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{silent.getsockname()[1]}/")
        monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path))
        with pytest.raises(FetchError, match="pkg-1.0.0.tgz failed: .*timed out"):
            npm_pack("@scope/pkg", "1.0.0", TARBALL_SHA256)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_missing_apt_get_is_a_fetch_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no apt-get on this "machine"
    monkeypatch.setenv("LIVERIG_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FetchError, match=r"needs apt-get \(Debian/Ubuntu\) to fetch liblo-tools_\*\.deb"):
        apt_download("liblo-tools", "0.31-1", "0" * 64)
    assert list((tmp_path / "cache" / "downloads").iterdir()) == []


def test_missing_dpkg_deb_is_a_fetch_error_naming_it(tmp_path, monkeypatch):
    deb = tmp_path / "x_1_all.deb"
    deb.write_bytes(b"!<arch>\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FetchError, match=r"needs dpkg-deb \(Debian/Ubuntu\) to unpack x_1_all\.deb"):
        fetch.extract(deb, "usr/share/x", tmp_path / "x")
