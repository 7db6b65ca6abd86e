"""The hardening suite's short, seeded run (`python -m liverig.runtime.harden --quick` is the same with its
default seed; the long run is the command without --quick: docs/hardening.md). Marked `harden`:
`pytest -m harden` runs only these, `pytest -m "not harden"` skips them."""

from __future__ import annotations

import pytest

from liverig.runtime import harden

pytestmark = pytest.mark.harden


@pytest.mark.parametrize("surface", list(harden.SURFACES))
def test_fuzzed_inputs_end_in_a_result_or_one_line_naming_the_culprit(tmp_path, surface):
    (result,) = harden.fuzz(150, seed=20, surfaces=[surface], log=lambda line: None)
    assert result.inputs >= 100
    assert not result.findings, result.findings[:5]
    # The fuzzer reaches both the refusals (or closes) and the accepted paths, not only one of them.
    assert len(result.outcomes) >= 2 and min(result.outcomes.values()) > 0, result.outcomes


def test_faults_disk_full_folder_removed_receivers_gone_camera_and_kills():
    results = harden.faults(kills=2, seed=20, log=lambda line: None)
    failed = [result for result in results if not result["ok"]]
    assert not failed, failed
    assert any(result["fault"].startswith("SIGKILL") for result in results)


def test_websocket_flood_leaves_the_good_client_streaming():
    """Short and on a shared CI machine: the good client must keep its stream (well above half the
    rate) and the node must survive; the targets themselves are measured by the long command."""
    result = harden.flood(3.0, log=lambda line: None)
    assert result["flooded"]["fps"] >= 15, result
    assert result["rss_mb"]["growth_pct"] < 50, result
