"""Meta-World MT10 tasks on MuJoCo MJX, with Brax's `Env` API (`reset(rng)`, `step(state, a)`).

`make("reach-v3")` gives a `brax.envs.base.PipelineEnv` whose observation, action, reset ranges,
v2 reward and success follow the installed `metaworld` package (3.0.0); the scenes and meshes are
read from that package at run time. See README.md in this folder, `models.MJX_CHANGES` for every
change made so that MJX runs the scenes, and `base.py` for the shared Sawyer semantics.

On CPU, compile MJX code with `compiler_options=CPU_COMPILER_OPTIONS` (XLA's new CPU fusion
emitters off): with them, XLA fuses MJX's kinematic chain into kernels that run ~300x slower
(0.5 s instead of 1.5 ms per forward pass of a Sawyer scene, measured with jax 0.10.2); or set
XLA_FLAGS=--xla_cpu_use_fusion_emitters=false for the whole process. This package does not set
the flag itself, so it is applied per program: combined with XLA's backend optimisation level 0
(the test suite's setting) the old emitters made a vmapped SAC update produce NaN for one seed
(jax 0.10.2; tests/algos/test_sac.py), while at the default level the same update with and
without them agrees to 1e-9 (measured), which is how the runner compiles Meta-World SAC on CPU.
GPUs are unaffected.
"""

from __future__ import annotations

from envs.metaworld.base import (
    ACTION_SIZE,
    INFO_KEYS,
    MAX_PATH_LENGTH,
    OBS_SIZE,
    SawyerEnv,
)
from envs.metaworld.models import (
    MJX_CHANGES,
    MT10_SCENES,
    PORTED_TASKS,
    MetaWorldUnavailableError,
)
from envs.metaworld.registry import TASK_NAMES, make

# Per-program XLA options for MJX on CPU: `jax.jit(fn, compiler_options=CPU_COMPILER_OPTIONS)`.
CPU_COMPILER_OPTIONS: dict[str, bool] = {"xla_cpu_use_fusion_emitters": False}

__all__ = [
    "ACTION_SIZE",
    "CPU_COMPILER_OPTIONS",
    "INFO_KEYS",
    "MAX_PATH_LENGTH",
    "MJX_CHANGES",
    "MT10_SCENES",
    "OBS_SIZE",
    "PORTED_TASKS",
    "TASK_NAMES",
    "MetaWorldUnavailableError",
    "SawyerEnv",
    "make",
]
