"""The coverage-guided engine (runtime/harden_atheris.py): a short seeded libFuzzer campaign per
surface, and proof that it reports what it must (a traceback only coverage guidance reaches, a
multi-line refusal, a hang) the same way the hypothesis engine does. Skipped where atheris has no
wheel (it is in the [dev] extra for Linux x86_64, Python < 3.13). The long run:
`python -m liverig.harden --phases fuzz --engine atheris --inputs 10000` (docs/hardening.md)."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

from liverig.runtime import harden, harden_atheris

pytestmark = pytest.mark.harden
needs_atheris = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (wheels: Linux x86_64, Python < 3.13; pip install 'atheris==2.3.0')",
)

# Surfaces whose checks are broken on purpose: a real campaign must report each as a finding.
BROKEN = '''
import time
from liverig.runtime.harden import Campaign


def magic(folder, inputs, seed, run):
    """A traceback behind a 4-byte comparison: blind mutation of b"hello" needs ~2^32 tries,
    atheris's comparison tracing hands libFuzzer the bytes."""
    def check(data):
        if data[:4] == b"FUZZ":
            raise KeyError("the bug")
        return "ok"
    return run(Campaign("magic", None, check, (ValueError,), seeds=[b"hello"]), inputs, seed)


def multiline(folder, inputs, seed, run):
    def check(data):
        if data != b"short":
            raise ValueError("bad input\\nsecond line")
        return "ok"
    return run(Campaign("multiline", None, check, (ValueError,), seeds=[b"short"]), inputs, seed)


def hang(folder, inputs, seed, run):
    def check(data):
        if data.startswith(b"H"):
            time.sleep(60)
        return "ok"
    return run(Campaign("hang", None, check, seeds=[b"Hi"]), inputs, seed)


def exits(folder, inputs, seed, run):
    def check(data):
        if data.startswith(b"X"):
            raise SystemExit("a loader that exits")  # no Exception: it escapes the judge to libFuzzer
        return "ok"
    return run(Campaign("exits", None, check, seeds=[b"X"]), inputs, seed)


def clean(folder, inputs, seed, run):
    return run(Campaign("clean", None, lambda data: "ok", seeds=[b"x"]), inputs, seed)


SURFACES = {"magic": magic, "multiline": multiline, "hang": hang, "exits": exits, "clean": clean}
'''


@pytest.fixture
def broken(tmp_path, monkeypatch):
    (tmp_path / "broken_surfaces.py").write_text(textwrap.dedent(BROKEN))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the children
    monkeypatch.syspath_prepend(str(tmp_path))  # --reproduce, here
    return tmp_path


def _run(surface, inputs, tmp_path, timeout_s=harden.HANG_S):
    (result,) = harden_atheris.fuzz_atheris(
        inputs,
        seed=20,
        surfaces=[surface],
        log=lambda line: None,
        timeout_s=timeout_s,
        module="broken_surfaces",
        artifacts=tmp_path / "kept",
    )
    return result


@needs_atheris
@pytest.mark.parametrize("surface", list(harden.SURFACES))
def test_a_short_coverage_guided_campaign_finds_nothing(tmp_path, surface):
    (result,) = harden_atheris.fuzz_atheris(
        200, seed=20, surfaces=[surface], log=lambda line: None, artifacts=tmp_path
    )
    assert not result.findings, result.findings[:5]
    assert result.inputs == 200, result
    # libFuzzer saw edges in the instrumented readers and kept inputs that reached new ones.
    assert result.coverage["cov"] > 20 and result.coverage["corpus"] > 1, result.coverage


@needs_atheris
def test_a_traceback_only_coverage_guidance_reaches_is_a_finding_with_its_input_kept(broken, capsys):
    result = _run("magic", 3000, broken)
    assert result.outcomes["traceback"] >= 1 and result.outcomes["ok"] >= 1, result.outcomes
    assert any(f.startswith("KeyError: 'the bug'") for f in result.findings), result.findings
    kept = next(f for f in result.findings if "input kept" in f).split("input kept: ")[1].rstrip(")")
    assert open(kept, "rb").read()[:4] == b"FUZZ"
    # The kept input reproduces the finding outside libFuzzer.
    argv = ["--surface", "magic", "--reproduce", kept, "--module", "broken_surfaces"]
    assert harden_atheris.main(argv) == 1
    assert "finding: KeyError: 'the bug'" in capsys.readouterr().out


@needs_atheris
def test_a_multi_line_refusal_is_a_finding(broken):
    result = _run("multiline", 300, broken)
    assert result.outcomes["refused"] >= 1
    assert any(f.startswith("not one line: ValueError") for f in result.findings), result.findings


@needs_atheris
def test_a_hang_is_ended_by_libfuzzer_and_reported(broken):
    result = _run("hang", 50, broken, timeout_s=1)
    assert result.outcomes["hang"] == 1, result
    assert any(f.startswith("libFuzzer: timeout after") for f in result.findings), result.findings


@needs_atheris
def test_an_exception_that_escapes_the_check_ends_the_campaign_as_a_crash(broken):
    result = _run("exits", 50, broken)
    assert result.outcomes["crash"] == 1, result
    assert any("uncaught SystemExit: a loader that exits" in f for f in result.findings), result.findings


@needs_atheris
def test_a_clean_surface_runs_exactly_the_inputs_asked(broken):
    result = _run("clean", 500, broken)
    assert result.inputs == 500 and result.outcomes == {"ok": 500} and not result.findings, result


def test_without_atheris_the_phase_is_skipped_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(harden_atheris, "missing", lambda: "atheris is not importable (test)")
    code = harden.main(["--phases", "fuzz", "--engine", "atheris", "--inputs", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fuzz (atheris): skipped: atheris is not importable (test)" in out
