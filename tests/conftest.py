"""Test-wide settings: the suite runs on CPU, where XLA's LLVM optimisation of the many small
test programs costs more than running them (compile-bound: ~10x faster suite at level 0)."""

import os

_FLAG = "--xla_backend_optimization_level=0"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
