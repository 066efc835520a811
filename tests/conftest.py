"""Test-wide settings: the suite runs on CPU, where XLA's LLVM optimisation of the many small
test programs costs more than running them (compile-bound: ~10x faster suite at level 0). The
few tests whose time goes into running rather than compiling (the learning checks) train through
the `train_cli` fixture: the CLI in a subprocess with XLA's default optimisation (~2x faster).
The MJX Meta-World tests compile with `envs.metaworld.CPU_COMPILER_OPTIONS` per program."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

_OPT0 = "--xla_backend_optimization_level=0"
if _OPT0 not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _OPT0).strip()

ROOT = Path(__file__).resolve().parents[1]

# The CLIs the tests start use JAX's persistent compilation cache, as a user's runs do
# (jaxsparse.run.compile_cache), in a folder of this test process: never the user's cache.
if "JAXSPARSE_COMPILE_CACHE" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="jaxsparse-test-xla-")
    os.environ["JAXSPARSE_COMPILE_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


@pytest.fixture
def train_cli() -> Callable[..., str]:
    """``train_cli(experiment, run_dir, *overrides)`` runs ``python -m jaxsparse train`` as a
    user would, with XLA's default optimisation level, and returns its output (asserting exit 0).
    """

    def run(experiment: str | Path, run_dir: Path, *overrides: str, timeout: int = 1500) -> str:
        flags = " ".join(f for f in os.environ.get("XLA_FLAGS", "").split() if f != _OPT0)
        cmd = [sys.executable, "-m", "jaxsparse", "train", str(experiment), "--run-dir"]
        proc = subprocess.run(
            [*cmd, str(run_dir), *overrides],
            cwd=ROOT,
            env={**os.environ, "XLA_FLAGS": flags},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    return run
