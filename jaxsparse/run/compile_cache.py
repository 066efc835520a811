"""JAX's persistent compilation cache for training runs.

A resumed run compiles the same programs as the run it continues: on a 2-core CPU that is a
minute or two for a MiniGrid chunk and over 40 minutes for a Meta-World MT10 SAC run (its
1-seed init and update: 7 and 35 min, benchmarks/RESULTS.md). With the
persistent cache (``jax_compilation_cache_dir``) the second process loads the compiled programs
from disk instead. ``jaxsparse train`` turns it on by default in ``default_cache_dir()``
(``$JAXSPARSE_COMPILE_CACHE`` if set, else ``$XDG_CACHE_HOME/jaxsparse/xla``, else
``~/.cache/jaxsparse/xla``); ``--compile-cache DIR`` picks another folder and
``--no-compile-cache`` (or ``JAXSPARSE_COMPILE_CACHE=off``) turns it off. A cache folder set
by the user through JAX itself (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is kept as it is.

JAX keys each entry on the program, the compile options, the backend and its version; XLA:CPU
checks on load that the entry was compiled for this machine's instruction set and recompiles if
not. Only programs that took at least ``jax_persistent_cache_min_compile_time_secs`` (1 s by
default) to compile are written. The folder is never pruned (JAX's size bound needs the
``filelock`` package): delete it to reclaim the space.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

OFF = ("off", "0", "false", "no")


def default_cache_dir() -> Path | None:
    """``$JAXSPARSE_COMPILE_CACHE`` (None when it says ``off``), else
    ``$XDG_CACHE_HOME/jaxsparse/xla``, else ``~/.cache/jaxsparse/xla``."""
    env = os.environ.get("JAXSPARSE_COMPILE_CACHE")
    if env:
        return None if env.strip().lower() in OFF else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxsparse" / "xla"


def enable_compile_cache(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Turn on the persistent compilation cache in ``path`` (default: ``default_cache_dir()``)
    and return the folder in use, or None when the default is off. A folder already set through
    JAX's own configuration (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) wins over both.
    Call it before anything compiles: JAX decides once per process whether to use the cache."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    folder = Path(path) if path is not None else default_cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the folder {folder}: {err}") from None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    return folder


class CacheStats:
    """Programs loaded from the persistent cache ``folder`` in this process and the compile
    seconds that saved (as JAX measures them), counted from the moment of creation."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits = 0
        self.saved_s = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)

    def _on_duration(self, event: str, duration: float, **_: str | int) -> None:
        if event == "/jax/compilation_cache/compile_time_saved_sec":
            self.hits += 1
            self.saved_s += max(duration, 0.0)

    def describe(self) -> str:
        folder = self.folder
        if not self.hits:
            return f"compile cache {folder}: nothing loaded (compiled programs are saved there)"
        return (
            f"compile cache {folder}: {self.hits} program(s) loaded, about "
            f"{self.saved_s:.0f} s of compiling saved"
        )
