"""Coverage-guided fuzzing (atheris: libFuzzer for Python) of the hardening suite's surfaces.

    python -m liverig.harden --phases fuzz --engine atheris --inputs 10000
    python -m liverig.runtime.harden_atheris --surface config --reproduce out/harden-atheris/config-1.bin

Why a second engine: hypothesis draws inputs from a grammar written by hand, so it only reaches the
branches that grammar was written to reach. atheris instruments the bytecode of the readers
(`atheris.instrument_imports`: liverig, PyYAML, websockets, soundfile) and libFuzzer keeps every
mutation of the real inputs (configs/*.yaml, configs/rigs/*.yaml, the landmark fixtures, a VRM
document, real sound files) that reaches a new edge or comparison, so it digs into branches nobody
wrote a strategy for.

Each surface runs in a child process of its own, because `atheris.Fuzz()` never returns and
libFuzzer owns the process (its `-timeout` alarm, its exit). The child judges every input with the
same `judge`/`check` as the hypothesis engine (runtime/harden.py: a traceback, a hang, a multi-line
or unnamed refusal, a non-finite number accepted or reaching an output are findings), writes a
JSON summary after every input (so a child killed by libFuzzer for a hang still reports what it ran),
and exits itself after the requested number of inputs. The parent reads the summary and libFuzzer's
log (coverage: `cov` edges, `ft` features, corpus size; a timeout or deadly signal) and keeps each
finding's input as a reproducer under `out/harden-atheris/`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from liverig.runtime.harden import HANG_S, ROOT, Campaign, SurfaceResult, judge

# The code whose branches guide the fuzzer: ours and the pure-Python readers under it.
INSTRUMENTED = ["liverig", "yaml", "websockets", "soundfile"]
ARTIFACTS = ROOT / "out" / "harden-atheris"
KEPT_FINDINGS = 50  # findings listed in a child's summary (the count is always whole)
MAX_LEN = 1 << 20


def missing() -> str | None:
    """None when atheris imports here, else the one line saying why the engine cannot run."""
    try:
        import atheris  # noqa: F401
    except ImportError as error:
        return (
            f"atheris is not importable ({error}); it has wheels for Linux x86_64 and Python < 3.13: "
            "pip install 'atheris==2.3.0' (in the [dev] extra)"
        )
    return None


def fuzz_atheris(
    inputs: int,
    seed: int,
    surfaces: list[str] | None = None,
    log=print,
    timeout_s: float = HANG_S,
    module: str = "liverig.runtime.harden",
    artifacts: Path = ARTIFACTS,
) -> list[SurfaceResult]:
    """One libFuzzer campaign of `inputs` executions per surface, each in a child process."""
    names = surfaces or list(importlib.import_module(module).SURFACES)
    results = []
    for name in names:
        start = time.perf_counter()
        result = _campaign(name, inputs, seed, timeout_s, module, artifacts)
        log(f"  {result.line()} [{time.perf_counter() - start:.0f} s]")
        for finding in result.findings[:5]:
            log(f"    finding: {finding}")
        results.append(result)
    return results


def _campaign(
    name: str, inputs: int, seed: int, timeout_s: float, module: str, artifacts: Path
) -> SurfaceResult:
    with tempfile.TemporaryDirectory(prefix="liverig-atheris-") as work:
        folder = Path(work)
        command = [sys.executable, "-m", "liverig.runtime.harden_atheris", "--child", name]
        command += ["--inputs", str(inputs), "--seed", str(seed), "--timeout", f"{timeout_s:g}"]
        command += ["--module", module, "--work", str(folder)]
        log_path = folder / "libfuzzer.log"
        with log_path.open("wb") as log_file:
            child = subprocess.run(command, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
        text = log_path.read_text(errors="replace")
        summary_path = folder / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        result = SurfaceResult(summary.get("surface", name))
        result.inputs = summary.get("inputs", 0)
        result.outcomes = Counter(summary.get("outcomes", {}))
        result.slowest_s = summary.get("slowest_s", 0.0)
        result.findings = list(summary.get("findings", []))
        if summary.get("finding_count", 0) > len(result.findings):
            result.findings.append(f"... {summary['finding_count'] - len(result.findings)} more not listed")
        stats = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", text)
        if stats:
            cov, ft, corpus = map(int, stats[-1])
            result.coverage = {"cov": cov, "ft": ft, "corpus": corpus}
        for index, unit in summary.get("reproducers", []):
            kept = _keep(folder / unit, name, artifacts)
            if kept and index < len(result.findings):
                result.findings[index] += f" (input kept: {kept})"
        died = _died(text)
        if died:
            result.inputs += 1
            result.outcomes["hang" if "timeout" in died else "crash"] += 1
            units = re.findall(r"Test unit written to (\S+)", text)
            kept = _keep(Path(units[-1]), name, artifacts) if units else None
            result.findings.append(f"libFuzzer: {died}" + (f" (input kept: {kept})" if kept else ""))
        elif child.returncode != 0 or result.inputs < inputs:
            tail = " | ".join(text.strip().splitlines()[-3:])[-300:]
            result.findings.append(
                f"the campaign stopped after {result.inputs} of {inputs} inputs "
                f"(exit status {child.returncode}): {tail}"
            )
        return result


def _died(text: str) -> str | None:
    """libFuzzer's own verdict when it ended the child: a timeout, a deadly signal, out of memory,
    or an exception that escaped the judge (only BaseExceptions such as SystemExit can)."""
    for pattern in (
        r"ERROR: libFuzzer: (timeout after \d+ seconds)",
        r"ERROR: libFuzzer: (out-of-memory[^\n]*)",
        r"ERROR: libFuzzer: (deadly signal)",
    ):
        match = re.search(pattern, text)
        if match:
            return " ".join(match.group(1).split())
    if "Uncaught Python exception" in text:  # then a traceback, whose first unindented line is the error
        after = text.split("Uncaught Python exception", 1)[1].splitlines()[1:]
        lines = [line for line in after if line and not line[0].isspace() and "Traceback" not in line]
        error = lines[0] if lines else ""
        return f"uncaught {error[:200]}"
    return None


def _keep(unit: Path, name: str, artifacts: Path) -> str | None:
    """Copy one finding's input out of the child's temp folder (for --reproduce); its new path."""
    if not unit.is_file():
        return None
    artifacts.mkdir(parents=True, exist_ok=True)
    number = 1
    while (artifacts / f"{name}-{number}.bin").exists():
        number += 1
    target = artifacts / f"{name}-{number}.bin"
    shutil.copyfile(unit, target)
    return str(target)


# ---- the child ---------------------------------------------------------------------------------------


def _child(args: argparse.Namespace) -> None:
    import atheris

    folder = Path(args.work)
    summary = folder / "summary.json"
    corpus = folder / "corpus"
    corpus.mkdir()

    def run(campaign: Campaign, inputs: int, seed: int) -> SurfaceResult:
        result = SurfaceResult(campaign.name)
        reproducers: list[tuple[int, str]] = []  # (the finding's index, its input's file)

        def write() -> None:
            data = {
                "surface": result.name,
                "inputs": result.inputs,
                "outcomes": dict(result.outcomes),
                "slowest_s": result.slowest_s,
                "findings": result.findings[:KEPT_FINDINGS],
                "finding_count": len(result.findings),
                "reproducers": reproducers,
            }
            partial = summary.with_suffix(".part")
            partial.write_text(json.dumps(data))
            os.replace(partial, summary)

        def one(data: bytes) -> None:
            before = len(result.findings)
            judge(campaign, result, campaign.decode(data), alarm=False)
            if len(result.findings) > before and len(reproducers) < 5:
                unit = f"finding-{len(reproducers) + 1}.bin"
                (folder / unit).write_bytes(data)
                reproducers.append((before, unit))
            if result.inputs >= inputs:
                if campaign.finish is not None:
                    campaign.finish(result)
                write()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)  # libFuzzer would go on (or exit without Python's clean-up)
            if len(result.findings) < 2 * KEPT_FINDINGS or result.inputs % 100 == 0:
                write()

        for index, data in enumerate(campaign.seeds):
            (corpus / f"seed-{index}").write_bytes(data)
        longest = max((len(data) for data in campaign.seeds), default=0)
        dictionary = folder / "words.dict"
        dictionary.write_text(_dictionary(campaign.seeds))
        flags = [
            f"-dict={dictionary}",
            f"-seed={seed if seed > 0 else 1}",  # libFuzzer reads 0 as "pick one"
            f"-timeout={max(1, round(args.timeout))}",
            f"-max_len={min(MAX_LEN, max(4096, 2 * longest))}",
            f"-artifact_prefix={folder}/",
            "-rss_limit_mb=4096",
        ]
        write()
        atheris.Setup([sys.argv[0], *flags, str(corpus)], one)
        atheris.Fuzz()
        return result  # not reached: one() exits the process

    include = INSTRUMENTED + ([] if args.module.startswith("liverig.") else [args.module])
    with atheris.instrument_imports(include=include):
        surfaces = importlib.import_module(args.module).SURFACES
        surfaces[args.child](folder, args.inputs, args.seed, run)


def _dictionary(seeds: list[bytes], limit: int = 300) -> str:
    """A libFuzzer dictionary of the words in the seeds (keys, bone names, schemes): the key lookups
    happen in pydantic's and the YAML parser's compiled code, which atheris cannot see compare."""
    words: dict[bytes, None] = {}
    for data in seeds:
        for word in re.findall(rb"[A-Za-z_][A-Za-z0-9_]{2,40}:?", data):
            words.setdefault(word, None)
    for token in (b"://", b"?token=", b"&", b"[", b"{", b"~", b".inf", b".nan", b"&a", b"*a", b"!!"):
        words.setdefault(token, None)
    return "".join(
        '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\x{b:02x}" for b in word) + '"\n'
        for word in list(words)[:limit]
    )


def _reproduce(args: argparse.Namespace) -> int:
    """Run one saved input through its surface's check, as the fuzzer did, and say what happened."""
    data = Path(args.reproduce).read_bytes()
    report: dict[str, Any] = {}

    def run(campaign: Campaign, inputs: int, seed: int) -> SurfaceResult:
        result = SurfaceResult(campaign.name)
        judge(campaign, result, campaign.decode(data))
        report["result"] = result
        return result

    with tempfile.TemporaryDirectory(prefix="liverig-atheris-") as work:
        surfaces = importlib.import_module(args.module).SURFACES
        surfaces[args.surface](Path(work), 1, args.seed, run)
    result = report["result"]
    print(result.line())
    for finding in result.findings:
        print(f"  finding: {finding}")
    return 1 if result.findings else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liverig.runtime.harden_atheris", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--surface", help="the surface a --reproduce input belongs to")
    parser.add_argument("--reproduce", metavar="FILE", help="run one kept input through its surface")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=HANG_S, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--module", default="liverig.runtime.harden", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 1  # not reached
    if not (args.reproduce and args.surface):
        parser.error("--reproduce FILE needs --surface NAME (campaigns: liverig.harden --engine atheris)")
    with contextlib.suppress(BrokenPipeError):
        return _reproduce(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
