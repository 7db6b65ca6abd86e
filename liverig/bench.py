"""`python -m liverig.bench`: the one benchmark command, as `run_node.py bench` (runtime/benchmark.py)."""

from liverig.runtime.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
