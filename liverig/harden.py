"""`python -m liverig.harden`: the hardening suite (runtime/harden.py, docs/hardening.md)."""

from liverig.runtime.harden import main

if __name__ == "__main__":
    raise SystemExit(main())
