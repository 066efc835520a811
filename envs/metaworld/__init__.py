"""Meta-World MT10 tasks on MuJoCo MJX, with Brax's `Env` API (`reset(rng)`, `step(state, a)`).

`make("reach-v3")` gives a `brax.envs.base.PipelineEnv` whose observation, action, reset ranges,
v2 reward and success follow the installed `metaworld` package (3.0.0); the scenes and meshes are
read from that package at run time. See README.md in this folder, `models.MJX_CHANGES` for every
change made so that MJX runs the scenes, and `base.py` for the shared Sawyer semantics.

On CPU, importing this package turns off XLA's new CPU fusion emitters (XLA_FLAGS
--xla_cpu_use_fusion_emitters=false) if JAX has not started yet: with them, XLA fuses MJX's
kinematic chain into kernels that run ~300x slower (0.5 s instead of 1.5 ms per forward pass of
a Sawyer scene, measured with jax 0.10.2). GPUs are unaffected.
"""

from __future__ import annotations

import os
import warnings

_CPU_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _use_legacy_cpu_fusion() -> None:
    if _CPU_FLAG in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # pragma: no cover - other jax versions
        started = False
    if not started:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _CPU_FLAG).strip()
        return
    import jax

    if jax.default_backend() == "cpu":
        warnings.warn(
            f"envs.metaworld was imported after JAX started on CPU without XLA_FLAGS={_CPU_FLAG}: "
            "MJX steps will be ~300x slower; set it in the environment (or import envs.metaworld "
            "first)",
            stacklevel=3,
        )


_use_legacy_cpu_fusion()

from envs.metaworld.base import (  # noqa: E402
    ACTION_SIZE,
    INFO_KEYS,
    MAX_PATH_LENGTH,
    OBS_SIZE,
    SawyerEnv,
)
from envs.metaworld.models import (  # noqa: E402
    MJX_CHANGES,
    MT10_SCENES,
    PORTED_TASKS,
    MetaWorldUnavailableError,
)
from envs.metaworld.registry import TASK_NAMES, make  # noqa: E402

__all__ = [
    "ACTION_SIZE",
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
