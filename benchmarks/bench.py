"""The project's speed figures in one command: ``make bench`` (full) or ``make bench-quick``.

Sections (``--sections``, all by default):

- ``env``: environment-only steps/s (random actions, auto-reset and episode statistics included)
  of the MiniGrid suites and of the Meta-World suite (the ported MT10 tasks) across batch sizes;
- ``train``: the PPO training step (rollout + GAE + critic and policy epochs + mask step) of
  MTPPO on MT3 with dense, GMP, SET and RigL, and dense with the plasticity diagnostics, at
  several seed counts vmapped (aggregate and per seed), and the sparse / dense ratios;
- ``flops``: the model FLOPs of one PPO update, counted analytically, and the achieved FLOP rate
  as a fraction of the device's measured dense matmul rate;
- ``profile``: where a PPO update's time goes (rollout, GAE, epochs, mask step) and what the
  evaluation and the diagnostics cost beside it;
- ``baselines``: what users would otherwise run, on the same machine in the same run:
  Stable-Baselines3 PPO on the gymnasium ``minigrid`` package with the same network and settings
  (``benchmarks/sb3_minigrid.py``, the ``bench`` extra), and the original Meta-World
  environments' steps/s for MT10; with the speed-up ratios;
- ``protocol``: the wall time of the paper's MiniGrid protocol (400k steps per task, 30 seeds,
  MT3 x GMP), projected from the measured update and evaluation times;
- ``sac``: multi-task SAC on the ported Meta-World tasks (environment and update together) at
  1, 4 and 10 seeds (full mode only: each seed count compiles the MJX step for minutes on CPU);
- ``maskgen``: what the neuron-level mask generator costs: the multi-task SAC training step at
  MT10's sizes (10 tasks, 3x400 networks, batch 1280) with and without the generator, the
  similarity phase apart and amortised over its period, and the FLOPs the masked networks
  would need with the masked neurons removed (quick and full modes).

Every figure is the median of several timed repetitions after a warm-up call; compile time is
reported apart. One JSON file per run goes to ``benchmarks/results/bench-<mode>-<time>.json``
(device, versions, git commit, config, figures) and the section of ``benchmarks/RESULTS.md``
between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` is regenerated from every recorded
run, grouped by device. ``--mode tiny`` is the smoke test's mode (seconds, tiny configs).

    PYTHONPATH=. python benchmarks/bench.py --mode quick
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from minigrid_env_throughput import cpu_name  # noqa: E402

from jaxsparse.run.build import build_trainer  # noqa: E402
from jaxsparse.run.config import load_experiment  # noqa: E402
from jaxsparse.run.runner import seed_keys  # noqa: E402

SECTIONS = ("env", "train", "flops", "profile", "baselines", "protocol", "sac", "maskgen")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# PPO sizes of the tiny mode: a valid MT3 config whose update compiles and runs in seconds.
TINY_PPO = (
    "env.num_envs_per_task=2",
    "env.eval_episodes_per_task=2",
    "ppo.rollout_length=8",
    "ppo.policy_minibatch_per_task=8",
    "ppo.critic_batch=16",
    "ppo.policy_epochs=2",
    "train.total_steps=64",
    "train.eval_every=16",
    "train.checkpoint_every=16",
)
# The clock (PPO updates done) the timed updates start from: inside every method's mask-update
# window (GMP prunes from update 10 to 160 of 200 at the paper's settings), so GMP, SET and RigL
# really update their masks in the timed updates.
MID_TRAINING_UPDATE = 50

MODES: dict[str, dict[str, Any]] = {
    "tiny": {
        "reps": 2,
        "minigrid_suites": ["MT3"],
        "minigrid_sizes": [1, 4],
        "env_scan_steps": 16,
        "mw_tasks": [],
        "mw_sizes": [],
        "train_methods": ["dense", "gmp", "dense+diagnostics"],
        "train_seeds": [1],
        "ppo_overrides": TINY_PPO,
        "matmul_n": 256,
        "sb3_steps": 0,
        "reference_seconds": 0.2,
        "mw_reference_steps": 20,
        "sac_seeds": [],
        "maskgen_seeds": [],  # the 3x400 SAC learner compiles for a minute: quick and full
    },
    "quick": {
        "reps": 3,
        "minigrid_suites": ["MT3", "MT5", "MT7"],
        "minigrid_sizes": [1, 64, 512],
        "env_scan_steps": 2000,
        "mw_tasks": [],  # each MJX batch size compiles for minutes on CPU: full mode only
        "mw_sizes": [],
        "train_methods": ["dense", "gmp", "set", "rigl", "dense+diagnostics"],
        "train_seeds": [1, 4],
        "ppo_overrides": (),
        "matmul_n": 2048,
        "sb3_steps": 12_000,
        "reference_seconds": 1.0,
        "mw_reference_steps": 500,
        "sac_seeds": [],
        "maskgen_seeds": [1],
    },
    "full": {
        "reps": 5,
        "minigrid_suites": ["MT3", "MT5", "MT7"],
        "minigrid_sizes": [1, 64, 512, 4096],
        "env_scan_steps": 2000,
        "mw_tasks": "ported",
        "mw_sizes": [16, 128],
        "train_methods": ["dense", "gmp", "set", "rigl", "dense+diagnostics"],
        "train_seeds": [1, 4, 16, 30],
        "ppo_overrides": (),
        "matmul_n": 4096,
        "sb3_steps": 24_000,
        "reference_seconds": 3.0,
        "mw_reference_steps": 1000,
        "sac_seeds": [1, 4, 10],
        "maskgen_seeds": [1, 4],
    },
}


# ----------------------------------------------------------------------------- timing helpers
def timed(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    """A warm-up call (timed apart: it compiles what is not compiled ahead of time), then
    ``reps`` timed calls."""
    t = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return {"first_call_s": first, "median_s": float(np.median(times)), "times_s": times}


def compile_timed(jitted, *args) -> tuple[Any, float]:
    t = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t


def device_info() -> dict[str, Any]:
    d = jax.devices()[0]
    if d.platform == "cpu":
        name = f"cpu: {cpu_name()} ({os.cpu_count()} cores)"
    else:
        name = f"{d.platform}: {d.device_kind}"
    return {
        "name": name,
        "platform": d.platform,
        "device_kind": d.device_kind,
        "count": jax.device_count(),
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "navix",
        "mujoco",
        "mujoco-mjx",
        "metaworld",
        "minigrid",
        "gymnasium",
        "stable-baselines3",
        "torch",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def git_commit() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except OSError:
        return "unknown"


# ----------------------------------------------------------------------------- 1. env-only
def _env_scan(suite, steps: int, continuous: bool):
    """A jitted ``lax.scan`` of ``steps`` random-action suite steps (observations used)."""

    def run(state, key):
        def body(state, k):
            k_act, k_step = jax.random.split(k)
            if continuous:
                actions = jax.random.uniform(
                    k_act, (suite.num_envs, suite.action_dim), minval=-1.0, maxval=1.0
                )
            else:
                actions = jax.random.randint(k_act, (suite.num_envs,), 0, suite.num_actions)
            if continuous:  # jaxsparse TaskSuite: an EnvStep
                out = suite.step(k_step, state, actions)
                obs, state, reward = out.obs, out.state, out.reward
            else:  # envs.minigrid suite: (obs, state, reward, terminated, truncated)
                obs, state, reward, _, _ = suite.step(k_step, state, actions)
                obs = obs.image
            # Use the observations, or XLA drops their computation as dead code.
            return state, reward.sum() + obs.sum(dtype=jnp.float32)

        return jax.lax.scan(body, state, jax.random.split(key, steps))

    return run


def env_section(mode: dict) -> dict[str, Any]:
    from envs.minigrid import make_suite

    reps, rows = mode["reps"], []
    for name in mode["minigrid_suites"]:
        for n in mode["minigrid_sizes"]:
            suite = make_suite(name, n)
            # About 200k transitions per call (at most env_scan_steps suite steps).
            steps = min(mode["env_scan_steps"], max(50, 200_000 // suite.num_envs))
            run = jax.jit(_env_scan(suite, steps, continuous=False))
            _, state = jax.jit(suite.reset)(jax.random.key(0))
            compiled, compile_s = compile_timed(run, state, jax.random.key(1))
            box = {"state": state, "i": 0}

            def call(compiled=compiled, box=box):
                box["i"] += 1
                box["state"], out = compiled(box["state"], jax.random.key(box["i"]))
                return out

            t = timed(call, reps)
            rows.append(
                {
                    "suite": name,
                    "envs_per_task": n,
                    "total_envs": suite.num_envs,
                    "compile_s": compile_s,
                    "median_s": t["median_s"],
                    "steps_per_s": steps * suite.num_envs / t["median_s"],
                }
            )
            print(f"  env {name} x{n}: {rows[-1]['steps_per_s']:,.0f} steps/s", flush=True)
    mw_rows = []
    tasks = mode["mw_tasks"]
    if tasks == "ported":
        from envs.metaworld import PORTED_TASKS

        tasks = list(PORTED_TASKS)
    if tasks and mode["mw_sizes"]:
        from envs.metaworld import CPU_COMPILER_OPTIONS
        from jaxsparse.algos.task_suite import metaworld_suite

        opts = CPU_COMPILER_OPTIONS if jax.devices()[0].platform == "cpu" else None
        for n in mode["mw_sizes"]:
            suite = metaworld_suite(tasks, n)
            steps = 100
            scan = _env_scan(suite, steps, continuous=True)

            # Reset and steps in one program: compiling MJX on CPU takes minutes per program,
            # and a reset costs less than one step (no frame skip), under 1 % of the call.
            def run(key, suite=suite, scan=scan):
                k_reset, k_run = jax.random.split(key)
                _, state = suite.reset(k_reset)
                return scan(state, k_run)[1]

            compiled, compile_s = compile_timed(
                jax.jit(run, compiler_options=opts), jax.random.key(0)
            )
            box = {"i": 0}

            def call(compiled=compiled, box=box):
                box["i"] += 1
                return compiled(jax.random.key(box["i"]))

            t = timed(call, reps)
            mw_rows.append(
                {
                    "suite": "+".join(tasks),
                    "tasks": len(tasks),
                    "envs_per_task": n,
                    "total_envs": suite.num_envs,
                    "compile_s": compile_s,
                    "median_s": t["median_s"],
                    "steps_per_s": steps * suite.num_envs / t["median_s"],
                }
            )
            print(f"  env MW x{n}: {mw_rows[-1]['steps_per_s']:,.0f} steps/s", flush=True)
    return {"minigrid": rows, "metaworld": mw_rows}


# ----------------------------------------------------------------------------- 2. training
def _method_overrides(method: str) -> tuple[str, list[str]]:
    """Experiment name and overrides of a ``train`` method label."""
    if method == "dense":
        return "mt3-dense", ["plasticity.diagnostics=false"]
    if method == "dense+diagnostics":
        return "mt3-dense", ["plasticity.diagnostics=true"]
    if method == "rigl":
        return "mt3-set", ["sparsity.method=rigl", "plasticity.diagnostics=false"]
    return f"mt3-{method}", ["plasticity.diagnostics=false"]


def _ppo_setup(method: str, seeds: int, mode: dict, *extra: str):
    exp, overrides = _method_overrides(method)
    cfg = load_experiment(exp, [f"seeds={seeds}", *overrides, *mode["ppo_overrides"], *extra])
    trainer = build_trainer(cfg)
    state = jax.jit(jax.vmap(trainer.init))(seed_keys(0, seeds))
    state = state.replace(update=jnp.full_like(state.update, MID_TRAINING_UPDATE))
    return cfg, trainer, state


class _Cache:
    """Compiled programs shared by the sections (same method, seeds and function)."""

    def __init__(self) -> None:
        self.items: dict[tuple, Any] = {}

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        if key not in self.items:
            self.items[key] = make()
        return self.items[key]


def _update_program(method: str, seeds: int, mode: dict, cache: _Cache) -> dict[str, Any]:
    def make():
        cfg, trainer, state = _ppo_setup(method, seeds, mode)
        fn = jax.jit(jax.vmap(lambda s: trainer.algo.update(s)[0]))
        compiled, compile_s = compile_timed(fn, state)
        return {
            "cfg": cfg,
            "trainer": trainer,
            "state": state,
            "fn": compiled,
            "compile_s": compile_s,
        }

    return cache.get(("update", method, seeds), make)


def _diagnose_program(seeds: int, mode: dict, cache: _Cache) -> dict[str, Any]:
    def make():
        cfg, trainer, state = _ppo_setup("dense+diagnostics", seeds, mode)
        fn = jax.jit(jax.vmap(lambda s: trainer.algo.diagnose(s, s.key)))
        compiled, compile_s = compile_timed(fn, state)
        return {
            "cfg": cfg,
            "trainer": trainer,
            "state": state,
            "fn": compiled,
            "compile_s": compile_s,
        }

    return cache.get(("diagnose", seeds), make)


def _eval_program(method: str, seeds: int, mode: dict, cache: _Cache) -> dict[str, Any]:
    """The greedy evaluation (``eval_episodes_per_task`` episodes per task) of a fresh state."""

    def make():
        prog = _update_program(method, seeds, mode, cache)
        algo = prog["trainer"].algo
        fn = jax.jit(jax.vmap(lambda s: algo.evaluate(s.params, s.key)))
        compiled, compile_s = compile_timed(fn, prog["state"])
        return {"state": prog["state"], "fn": compiled, "compile_s": compile_s}

    # Evaluation does not depend on the method's masks for its cost: share one program.
    return cache.get(("evaluate", seeds), make)


def _run_updates(prog: dict, reps: int) -> dict[str, float]:
    """Timed updates from the mid-training state; the clock is reset before every call so each
    timed update is a mask-update step of the sparse methods."""
    if "timing" not in prog:  # one measurement per program, shared by the sections
        state = prog["state"]
        prog["timing"] = timed(lambda: prog["fn"](state), reps)
    return prog["timing"]


def train_section(mode: dict, cache: _Cache) -> dict[str, Any]:
    reps, rows = mode["reps"], []
    for seeds in mode["train_seeds"]:
        for method in mode["train_methods"]:
            base = "dense" if method == "dense+diagnostics" else method
            prog = _update_program(base, seeds, mode, cache)
            t = _run_updates(prog, reps)
            per_update = t["median_s"]
            compile_s = prog["compile_s"]
            cfg, trainer = prog["cfg"], prog["trainer"]
            note = ""
            if method == "dense+diagnostics":
                # Diagnostics run once per evaluation (every train.eval_every steps per task):
                # their time is spread over the updates of one chunk, as in training.
                diag = _diagnose_program(seeds, mode, cache)
                td = timed(lambda d=diag: d["fn"](d["state"]), reps)
                per_update += td["median_s"] / trainer.updates_per_chunk
                compile_s += diag["compile_s"]
                note = (
                    f"{seeds} seed(s): diagnose {td['median_s']:.3f} s once per "
                    f"{trainer.updates_per_chunk} updates (at every evaluation), spread over them"
                )
            env_steps = cfg.steps_per_update * len(trainer.task_names) * seeds
            rows.append(
                {
                    "method": method,
                    "seeds": seeds,
                    "compile_s": compile_s,
                    "s_per_update": per_update,
                    "env_steps_per_s": env_steps / per_update,
                    "env_steps_per_s_per_seed": env_steps / per_update / seeds,
                    "note": note,
                }
            )
            print(
                f"  train {method} seeds={seeds}: {rows[-1]['env_steps_per_s']:,.0f} env steps/s",
                flush=True,
            )
    dense = {r["seeds"]: r["env_steps_per_s"] for r in rows if r["method"] == "dense"}
    for r in rows:
        r["ratio_to_dense"] = r["env_steps_per_s"] / dense[r["seeds"]]
    return {
        "suite": "MT3",
        "arch": "mtppo",
        "clock_update": MID_TRAINING_UPDATE,
        "overrides": list(mode["ppo_overrides"]),
        "rows": rows,
    }


# ----------------------------------------------------------------------------- 3. FLOPs
def mtppo_forward_flops(n_tasks: int, n_actions: int, hidden: int = 128) -> int:
    """Model FLOPs (2 x multiply-accumulates) of one MTPPO forward pass of one sample: the
    three VALID 2x2 convs of the 7x7x3 view (16, 32, 64 channels) and the sample's own task's
    actor and critic heads (1024 -> hidden -> n_actions and 1024 -> hidden -> 1). Biases,
    activations and the per-task head selection are not counted (the usual model-FLOP rule)."""
    del n_tasks  # a sample runs only its own task's head
    flops, size, cin = 0, 7, 3
    for cout in (16, 32, 64):
        size -= 1
        flops += 2 * 4 * cin * cout * size * size
        cin = cout
    features = cin * size * size
    flops += 2 * (features * hidden + hidden * n_actions)  # actor head
    flops += 2 * (features * hidden + hidden * 1)  # critic head
    return flops


def ppo_update_flops(trainer) -> dict[str, int]:
    """Model FLOPs of one PPO update of one seed. Forward passes: the rollout (every step of
    every env), V of the last and of every final observation for GAE; forward + backward (3x a
    forward) for every sample of every critic and policy minibatch. The whole network is counted
    in every pass (the critic loss's gradient skips the actor head in practice: an upper bound
    of about 1 %)."""
    algo = trainer.algo
    env = algo.env
    fwd = mtppo_forward_flops(env.num_tasks, env.num_actions, algo.net.module.hidden)
    rollout = algo.config.rollout_length * env.num_envs
    gae_passes = rollout + env.num_envs
    critic = algo.config.critic_epochs * algo.num_critic_batches * algo.critic_mb * env.num_tasks
    policy = algo.config.policy_epochs * algo.num_minibatches * algo.policy_mb * env.num_tasks
    return {
        "forward_per_sample": fwd,
        "rollout": fwd * rollout,
        "gae": fwd * gae_passes,
        "critic_epochs": 3 * fwd * critic,
        "policy_epochs": 3 * fwd * policy,
        "total": fwd * (rollout + gae_passes) + 3 * fwd * (critic + policy),
    }


def matmul_rate(n: int, reps: int) -> dict[str, float]:
    """Measured dense float32 matmul rate (n x n @ n x n), the device's practical peak."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    t = timed(lambda: f(a, b), max(reps, 3))
    return {"n": n, "median_s": t["median_s"], "flops_per_s": 2 * n**3 / t["median_s"]}


def flops_section(mode: dict, cache: _Cache, train: dict | None) -> dict[str, Any]:
    peak = matmul_rate(mode["matmul_n"], mode["reps"])
    rows = []
    for seeds in mode["train_seeds"]:
        prog = _update_program("dense", seeds, mode, cache)
        if train is not None:
            s = next(
                r["s_per_update"]
                for r in train["rows"]
                if r["method"] == "dense" and r["seeds"] == seeds
            )
        else:
            s = _run_updates(prog, mode["reps"])["median_s"]
        counts = ppo_update_flops(prog["trainer"])
        rate = counts["total"] * seeds / s
        rows.append(
            {
                "seeds": seeds,
                "flops_per_update_per_seed": counts["total"],
                "s_per_update": s,
                "achieved_flops_per_s": rate,
                "fraction_of_matmul_peak": rate / peak["flops_per_s"],
            }
        )
    counts = ppo_update_flops(
        _update_program("dense", mode["train_seeds"][0], mode, cache)["trainer"]
    )
    print(
        f"  flops: {counts['total'] / 1e9:.1f} GFLOP per update; matmul peak "
        f"{peak['flops_per_s'] / 1e9:.1f} GFLOP/s; achieved "
        + ", ".join(f"{r['fraction_of_matmul_peak']:.3f}" for r in rows),
        flush=True,
    )
    return {"matmul": peak, "breakdown": counts, "rows": rows}


# ----------------------------------------------------------------------------- 4. profile
def profile_section(mode: dict, cache: _Cache) -> dict[str, Any]:
    """Per-phase times of one seed's PPO update (each phase compiled on its own, so fused work
    across phase borders is not seen; the remainder is reported)."""
    reps = mode["reps"]
    dense = _update_program("dense", 1, mode, cache)
    trainer, state = dense["trainer"], dense["state"]
    algo = trainer.algo

    rollout = jax.jit(jax.vmap(lambda s: algo._rollout(s, s.key)))
    roll_c, roll_compile = compile_timed(rollout, state)
    t_roll = timed(lambda: roll_c(state), reps)
    after, traj = roll_c(state)

    gae_c, gae_compile = compile_timed(jax.jit(jax.vmap(algo._advantages)), after, traj)
    t_gae = timed(lambda: gae_c(after, traj), reps)
    t_update = _run_updates(dense, reps)

    gmp = _update_program("gmp", 1, mode, cache)
    t_gmp_fire = _run_updates(gmp, reps)
    before_start = gmp["state"].replace(update=jnp.zeros_like(gmp["state"].update))
    t_gmp_idle = timed(lambda: gmp["fn"](before_start), reps)

    ev = _eval_program("dense", 1, mode, cache)
    t_eval = timed(lambda: ev["fn"](ev["state"]), reps)
    eval_compile = ev["compile_s"]
    diag = _diagnose_program(1, mode, cache)
    t_diag = timed(lambda: diag["fn"](diag["state"]), reps)

    u = t_update["median_s"]
    phases = {
        "rollout": t_roll["median_s"],
        "gae (value passes + GAE)": t_gae["median_s"],
        "critic + policy epochs (update - rollout - gae)": u
        - t_roll["median_s"]
        - t_gae["median_s"],
        "mask step (GMP update that prunes - one that does not)": t_gmp_fire["median_s"]
        - t_gmp_idle["median_s"],
    }
    per_chunk = trainer.updates_per_chunk
    print(
        "  profile: " + ", ".join(f"{k.split(' ')[0]} {v * 1e3:.0f} ms" for k, v in phases.items()),
        flush=True,
    )
    return {
        "seeds": 1,
        "update_s": u,
        "phases_s": phases,
        "gmp_update_pruning_s": t_gmp_fire["median_s"],
        "gmp_update_not_pruning_s": t_gmp_idle["median_s"],
        "evaluation_s": t_eval["median_s"],
        "diagnose_s": t_diag["median_s"],
        "updates_per_evaluation": per_chunk,
        "compile_s": {
            "update": dense["compile_s"],
            "rollout": roll_compile,
            "gae": gae_compile,
            "evaluation": eval_compile,
            "diagnose": diag["compile_s"],
        },
        "evaluation_episodes_per_task": algo.eval_env.num_envs // algo.eval_env.num_tasks,
    }


# ----------------------------------------------------------------------------- 5. baselines
def metaworld_reference_rates(steps: int) -> dict[str, float]:
    """Random-action steps/s of each original Meta-World MT10 environment, one at a time."""
    from envs.metaworld import MT10_SCENES
    from envs.metaworld.reference import make_reference, reference_rand_vecs

    rng = np.random.default_rng(0)
    rates = {}
    for task in MT10_SCENES:
        env = make_reference(task, reference_rand_vecs(task, 1, seed=0)[0])
        env.reset()
        actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)
        t = time.perf_counter()
        for i in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[i])
            if terminated or truncated:
                env.reset()
        rates[task] = steps / (time.perf_counter() - t)
        env.close()
    return rates


def minigrid_reference_rates(tasks: Sequence[str], seconds: float) -> dict[str, float]:
    from minigrid_env_throughput import time_reference

    return {t: time_reference(t, seconds) for t in tasks}


def baselines_section(mode: dict, cache: _Cache, train: dict | None, env: dict | None) -> dict:
    from envs.minigrid import SUITES

    out: dict[str, Any] = {}
    tasks = list(SUITES["MT3"])
    ref = minigrid_reference_rates(tasks, mode["reference_seconds"])
    out["minigrid_reference_env_steps_per_s"] = ref
    # One env stepped in Python, tasks in turn: the suite's rate is the harmonic mean.
    out["minigrid_reference_suite_steps_per_s"] = len(ref) / sum(1 / r for r in ref.values())
    if mode["sb3_steps"]:
        try:
            from sb3_minigrid import sb3_ppo_throughput

            # torch's default (one thread per core) and one thread: on a small shared CPU its
            # threads can wait on each other; the faster of the two is the baseline.
            runs = [
                sb3_ppo_throughput("MT3", total_steps=mode["sb3_steps"], threads=t)
                for t in (None, 1)
            ]
            out["sb3_runs"] = runs
            out["sb3"] = max(runs, key=lambda r: r["env_steps_per_s"])
        except ImportError as e:
            out["sb3"] = {"skipped": f"{e} (pip install -e '.[bench]')"}
    else:
        out["sb3"] = {"skipped": "tiny mode"}
    sb3 = out["sb3"]
    if "env_steps_per_s" in sb3:
        prog = _update_program("dense", 1, mode, cache)
        # The train section's measurement when it timed 1 seed (cached), else timed here.
        s = _run_updates(prog, mode["reps"])["median_s"]
        ours = prog["cfg"].steps_per_update * 3 / s
        # The same number of environment steps end to end: compile + updates (ours), learn()
        # (SB3; its environments are built beforehand and not timed).
        updates = math.ceil(sb3["total_steps"] / (prog["cfg"].steps_per_update * 3))
        ours_wall = prog["compile_s"] + updates * s
        out["speedup_vs_sb3"] = {
            "jax_env_steps_per_s_1_seed": ours,
            "sb3_env_steps_per_s": sb3["env_steps_per_s"],
            "steady_state": ours / sb3["env_steps_per_s"],
            "same_steps_wall_jax_s": ours_wall,
            "same_steps_wall_sb3_s": sb3["wall_s"],
            "same_steps_incl_compile": sb3["wall_s"] / ours_wall,
        }
        if train is not None:
            best = max(r["env_steps_per_s"] for r in train["rows"] if r["method"] == "dense")
            out["speedup_vs_sb3"]["best_seed_batch"] = best / sb3["env_steps_per_s"]
    mw = metaworld_reference_rates(mode["mw_reference_steps"])
    out["metaworld_reference_env_steps_per_s"] = mw
    out["metaworld_reference_mt10_steps_per_s"] = len(mw) / sum(1 / r for r in mw.values())
    if env is not None and env["metaworld"]:
        best = max(env["metaworld"], key=lambda r: r["steps_per_s"])
        tasks = best["suite"].split("+")
        ref_ported = len(tasks) / sum(1 / mw[t] for t in tasks)
        out["speedup_vs_metaworld"] = {
            "tasks": tasks,
            "reference_steps_per_s": ref_ported,
            "jax_steps_per_s": best["steps_per_s"],
            "jax_envs": best["total_envs"],
            "ratio": best["steps_per_s"] / ref_ported,
        }
    print(
        f"  baselines: minigrid ref {out['minigrid_reference_suite_steps_per_s']:,.0f} steps/s, "
        f"MT10 ref {out['metaworld_reference_mt10_steps_per_s']:,.0f} steps/s, sb3 "
        + (f"{sb3['env_steps_per_s']:,.0f} steps/s" if "env_steps_per_s" in sb3 else "skipped"),
        flush=True,
    )
    return out


# ----------------------------------------------------------------------------- 6. protocol
def protocol_section(mode: dict, cache: _Cache, train: dict | None) -> dict[str, Any]:
    """Wall time of the paper's MiniGrid protocol for MT3 x GMP at 30 seeds, projected from the
    measured GMP update at the largest seed count timed (per-seed scaling) and the evaluation."""
    seeds = max(mode["train_seeds"])
    prog = _update_program("gmp", seeds, mode, cache)
    if train is not None:
        s = next(
            r["s_per_update"] for r in train["rows"] if r["method"] == "gmp" and r["seeds"] == seeds
        )
    else:
        s = _run_updates(prog, mode["reps"])["median_s"]
    ev = _eval_program("gmp", seeds, mode, cache)
    t_eval = timed(lambda: ev["fn"](ev["state"]), mode["reps"])["median_s"]
    full = load_experiment("mt3-gmp")  # the protocol's sizes, whatever the mode's overrides
    updates = full.train.total_steps // full.steps_per_update
    evals = full.train.total_steps // full.train.eval_every
    scale = 30 / seeds
    wall = scale * (updates * s + evals * t_eval)
    print(f"  protocol: MT3 x GMP, 30 seeds, projected {wall / 3600:.2f} h", flush=True)
    return {
        "benchmark": "MT3",
        "method": "gmp",
        "target_seeds": 30,
        "measured_seeds": seeds,
        "updates": updates,
        "evaluations": evals,
        "s_per_update": s,
        "s_per_evaluation": t_eval,
        "projected_wall_s": wall,
        "projection": "linear in seeds from the largest seed count timed"
        if seeds != 30
        else "measured at 30 seeds",
    }


# ----------------------------------------------------------------------------- 7. SAC on MT10
def sac_section(mode: dict) -> dict[str, Any]:
    """MT-SAC on the ported Meta-World tasks: one update = ``sac.steps_per_update`` suite steps,
    each one environment step of every env and one gradient step (after warm-up)."""
    from envs.metaworld import PORTED_TASKS

    rows = []
    tasks = list(PORTED_TASKS)
    for seeds in mode["sac_seeds"]:
        cfg = load_experiment(
            "mt10-gmp",
            [
                f"seeds={seeds}",
                f"env.suite=[{','.join(tasks)}]",
                "sac.warmup_steps=0",
                "sac.steps_per_update=50",
                "train.eval_every=50",
                "train.checkpoint_every=50",
                "train.total_steps=2000000",
                "plasticity.diagnostics=false",
            ],
        )
        trainer = build_trainer(cfg)
        opts = trainer.compiler_options
        state = jax.jit(jax.vmap(trainer.init), compiler_options=opts)(seed_keys(0, seeds))
        fn = jax.jit(jax.vmap(lambda s, t=trainer: t.algo.update(s)[0]), compiler_options=opts)
        compiled, compile_s = compile_timed(fn, state)
        box = {"state": state}

        def call(compiled=compiled, box=box):
            box["state"] = compiled(box["state"])
            return box["state"]

        t = timed(call, mode["reps"])
        transitions = cfg.sac.steps_per_update * trainer.transitions_per_step * seeds
        rows.append(
            {
                "seeds": seeds,
                "tasks": tasks,
                "envs_per_task": cfg.env.num_envs_per_task,
                "compile_s": compile_s,
                "s_per_update": t["median_s"],
                "suite_steps_per_update": cfg.sac.steps_per_update,
                "env_steps_per_s": transitions / t["median_s"],
                "gradient_steps_per_s_per_seed": cfg.sac.steps_per_update / t["median_s"],
            }
        )
        print(f"  sac seeds={seeds}: {rows[-1]['env_steps_per_s']:,.0f} env steps/s", flush=True)
    return {"rows": rows}


MASKGEN_TASKS = 10
MASKGEN_OBS, MASKGEN_ACTION = 39 + MASKGEN_TASKS, 4  # Meta-World's, with the one-hot task id


def maskgen_flops(ratio: float, every: int, hidden=(400, 400, 400), gen_hidden=(256, 256)):
    """FLOPs per sample (one forward pass) of the MT10 actor and twin critics, dense and with
    each hidden layer cut to its live neurons, and of the generators' forward passes."""
    from jaxsparse.nets.maskgen import masked_mlp_flops, mlp_flops

    obs, act, T = MASKGEN_OBS, MASKGEN_ACTION, MASKGEN_TASKS
    dense = mlp_flops(obs, hidden, 2 * act) + 2 * mlp_flops(obs + act, hidden, 1)
    masked = masked_mlp_flops(obs, hidden, 2 * act, ratio) + 2 * masked_mlp_flops(
        obs + act, hidden, 1, ratio
    )
    state = obs - T  # the generators read the state without the one-hot columns
    gen_in = state + T + 1
    generators = mlp_flops(gen_in, gen_hidden, sum(hidden)) + mlp_flops(
        gen_in, gen_hidden, 2 * sum(hidden)
    )
    return {
        "ratio": ratio,
        "networks_dense": dense,
        "networks_masked": masked,
        "generators": generators,
        "masked_plus_generators": masked + generators,
        "similarity_every": every,
    }


def maskgen_section(mode: dict) -> dict[str, Any]:
    """The SAC training step (one environment step of every environment and one gradient step,
    ``steps`` of them per timed call) with and without the mask generator, at MT10's learner
    sizes on a cheap stand-in environment (gymnax Pendulum-v1 copies labelled as 10 tasks, one
    environment each): the generator changes the learner, not the environment. The similarity
    phase (VAE and generator steps) runs every ``maskgen.every`` gradient steps; it is timed apart
    and amortised."""
    from jaxsparse.algos.maskgen import MaskGenConfig
    from jaxsparse.algos.sac import SAC, SACConfig
    from jaxsparse.algos.sac_envs import ContinuousGymnaxVecEnv

    steps, T = 50, MASKGEN_TASKS
    env = ContinuousGymnaxVecEnv("Pendulum-v1", T, num_tasks=T)
    cfg = SACConfig(steps_per_update=steps, batch_size=1280, buffer_size=100_000, warmup_steps=10)
    every = MaskGenConfig().every
    rows = []
    for seeds in mode["maskgen_seeds"]:
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        for ratio in (None, 0.8, 0.5):
            # No phase inside the timed updates (every: 10**9); the phase is timed below.
            mg = None if ratio is None else MaskGenConfig(ratio=ratio, every=10**9)
            sac = SAC(cfg, env, maskgen=mg)
            state = jax.jit(jax.vmap(sac.init))(keys)
            fn = jax.jit(jax.vmap(lambda s, sac=sac: sac.update(s)[0]))
            compiled, compile_s = compile_timed(fn, state)
            box = {"state": compiled(state)}  # past the warm-up

            def call(compiled=compiled, box=box):
                box["state"] = compiled(box["state"])
                return box["state"]

            t = timed(call, mode["reps"])
            row = {
                "seeds": seeds,
                "ratio": ratio,
                "compile_s": compile_s,
                "s_per_step": t["median_s"] / steps,
            }
            if mg is not None:
                phase = jax.jit(
                    jax.vmap(
                        lambda s, k, sac=sac: sac.maskgen.similarity_phase(
                            s.params,
                            s.opt_state,
                            s.buffer,
                            k,
                            1,  # one environment per task
                        )[2]
                    )
                )
                st = box["state"]
                p = timed(lambda phase=phase, st=st, keys=keys: phase(st, keys), mode["reps"])
                row["phase_s"] = p["median_s"]
                row["s_per_step_amortised"] = row["s_per_step"] + p["median_s"] / every
            else:
                row["s_per_step_amortised"] = row["s_per_step"]
            row["gradient_steps_per_s_per_seed"] = 1.0 / row["s_per_step_amortised"]
            rows.append(row)
            print(
                f"  maskgen seeds={seeds} ratio={ratio}: "
                f"{row['gradient_steps_per_s_per_seed']:.1f} steps/s per seed",
                flush=True,
            )
    for row in rows:
        dense = next(r for r in rows if r["seeds"] == row["seeds"] and r["ratio"] is None)
        row["vs_without"] = dense["s_per_step_amortised"] / row["s_per_step_amortised"]
    return {
        "rows": rows,
        "every": every,
        "env": f"Pendulum-v1 x {T} tasks (1 env each)",
        "flops": [maskgen_flops(r, every) for r in (0.8, 0.5)],
    }


# ----------------------------------------------------------------------------- report
def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def render_run(r: dict) -> list[str]:
    """Markdown of one recorded run."""
    v = r["versions"]
    lines = [
        f"### {r['time']} - `{r['mode']}` mode - commit {r['commit']}",
        "",
        f"jax {v.get('jax')}, flax {v.get('flax')}, optax {v.get('optax')}, navix "
        f"{v.get('navix')}, mujoco {v.get('mujoco')}, Python {v.get('python')}; load average at "
        f"start {', '.join(f'{x:.1f}' for x in r.get('loadavg', []))}; wall {r['wall_s'] / 60:.1f} "
        "min. Figures: median of "
        f"{r['config']['reps']} timed repetitions after a warm-up call; compile apart.",
        "",
    ]
    s = r["sections"]
    if "env" in s and "error" not in s["env"]:
        lines += [
            "**Environment only** (random actions, auto-reset, episode statistics; steps/s over "
            "all environments)",
            "",
            "| suite | envs/task | envs | steps/s | compile s |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for e in s["env"]["minigrid"] + s["env"]["metaworld"]:
            lines.append(
                f"| {e['suite']} | {e['envs_per_task']} | {e['total_envs']} | "
                f"{_fmt(e['steps_per_s'])} | {e['compile_s']:.1f} |"
            )
        lines.append("")
    if "train" in s and "error" not in s["train"]:
        t = s["train"]
        lines += [
            f"**Training step** (MTPPO on MT3: rollout, GAE, critic and policy epochs, mask step; "
            f"timed from update {t['clock_update']}, inside every method's mask-update window"
            + (f"; tiny sizes {' '.join(t['overrides'])}" if t["overrides"] else "")
            + ")",
            "",
            "| method | seeds | s / update | env steps/s | per seed | / dense | compile s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in t["rows"]:
            lines.append(
                f"| {row['method']} | {row['seeds']} | {row['s_per_update']:.3f} | "
                f"{_fmt(row['env_steps_per_s'])} | {_fmt(row['env_steps_per_s_per_seed'])} | "
                f"{row['ratio_to_dense']:.2f} | {row['compile_s']:.1f} |"
            )
        notes = {row["note"] for row in t["rows"] if row["note"]}
        lines += [""] + [f"- dense+diagnostics, {n}" for n in sorted(notes)] + [""]
    if "flops" in s and "error" not in s["flops"]:
        f = s["flops"]
        b = f["breakdown"]
        lines += [
            f"**FLOP rate**: {b['total'] / 1e9:.2f} GFLOP of model FLOPs per update and seed "
            f"(forward {b['forward_per_sample'] / 1e6:.2f} MFLOP per sample; rollout "
            f"{b['rollout'] / 1e9:.2f}, GAE {b['gae'] / 1e9:.2f}, critic epochs "
            f"{b['critic_epochs'] / 1e9:.2f}, policy epochs {b['policy_epochs'] / 1e9:.2f} "
            f"GFLOP). Measured float32 matmul rate ({f['matmul']['n']}^2): "
            f"{f['matmul']['flops_per_s'] / 1e9:,.1f} GFLOP/s.",
            "",
            "| seeds | achieved GFLOP/s | fraction of matmul rate |",
            "| ---: | ---: | ---: |",
        ]
        for row in f["rows"]:
            lines.append(
                f"| {row['seeds']} | {row['achieved_flops_per_s'] / 1e9:,.2f} | "
                f"{row['fraction_of_matmul_peak']:.3f} |"
            )
        lines.append("")
    if "profile" in s and "error" not in s["profile"]:
        p = s["profile"]
        lines += [
            f"**Profile of one update** (1 seed, {p['update_s'] * 1e3:.0f} ms; phases compiled "
            "apart)",
            "",
            "| phase | ms | share of the update |",
            "| --- | ---: | ---: |",
        ]
        for k, val in p["phases_s"].items():
            if val < 0:  # a difference of two noisy medians, below this run's noise
                lines.append(f"| {k} | {val * 1e3:.0f} (below the noise) | - |")
            else:
                lines.append(f"| {k} | {val * 1e3:.0f} | {val / p['update_s']:.0%} |")
        lines += [
            f"| evaluation ({p['evaluation_episodes_per_task']} greedy episodes per task, once "
            f"per {p['updates_per_evaluation']} updates) | {p['evaluation_s'] * 1e3:.0f} | "
            f"{p['evaluation_s'] / p['updates_per_evaluation'] / p['update_s']:.0%} amortised |",
            f"| diagnostics (once per evaluation) | {p['diagnose_s'] * 1e3:.0f} | "
            f"{p['diagnose_s'] / p['updates_per_evaluation'] / p['update_s']:.0%} amortised |",
            "",
        ]
    if "baselines" in s and "error" not in s["baselines"]:
        b = s["baselines"]
        lines += ["**Against what users would otherwise run** (same machine, same run)", ""]
        sb3 = b["sb3"]
        if "speedup_vs_sb3" in b:
            sp = b["speedup_vs_sb3"]
            lines.append(
                f"- Stable-Baselines3 {sb3['versions'].get('stable_baselines3')} PPO (torch "
                f"{sb3['versions'].get('torch')}, {sb3['vec_env']} vec env, "
                f"{sb3['torch_threads']} torch threads: the faster of "
                + " and ".join(
                    f"{x['torch_threads']} thread(s) at {_fmt(x['env_steps_per_s'])} steps/s"
                    for x in b.get("sb3_runs", [sb3])
                )
                + ") on gymnasium `minigrid` MT3 with the same "
                f"network and PPO settings, {_fmt(sb3['total_steps'])} env steps: "
                f"{_fmt(sp['sb3_env_steps_per_s'])} env steps/s ({sb3['s_per_update']:.1f} s per "
                f"update of {_fmt(sb3['steps_per_update'])} steps, of which "
                f"{sb3['rollout_s'] / sb3['updates']:.1f} s collecting; its environments alone, "
                f"random actions: {_fmt(sb3.get('env_only_steps_per_s', float('nan')))} "
                "steps/s). "
                f"jaxsparse, 1 seed: {_fmt(sp['jax_env_steps_per_s_1_seed'])} env steps/s, "
                f"**{sp['steady_state']:.1f}x**; the same steps end to end with compile "
                f"{sp['same_steps_wall_jax_s']:.1f} s vs {sp['same_steps_wall_sb3_s']:.1f} s "
                f"({sp['same_steps_incl_compile']:.1f}x)"
                + (
                    f"; the best seed batch timed: **{sp['best_seed_batch']:.1f}x**."
                    if "best_seed_batch" in sp
                    else "."
                )
            )
        else:
            lines.append(f"- Stable-Baselines3: not run ({sb3.get('skipped')}).")
        ref = b["minigrid_reference_env_steps_per_s"]
        lines.append(
            "- gymnasium `minigrid`, one env stepped in Python (random actions): "
            + ", ".join(f"{k} {_fmt(v)}" for k, v in ref.items())
            + f" steps/s (MT3 in turn: {_fmt(b['minigrid_reference_suite_steps_per_s'])})."
        )
        mw = b["metaworld_reference_env_steps_per_s"]
        lines.append(
            f"- Original Meta-World ({v.get('metaworld')}, MuJoCo on the CPU, one env at a time, "
            "random actions): "
            + ", ".join(f"{k} {_fmt(val)}" for k, val in mw.items())
            + f" steps/s; MT10 in turn {_fmt(b['metaworld_reference_mt10_steps_per_s'])} steps/s."
        )
        if "speedup_vs_metaworld" in b:
            sm = b["speedup_vs_metaworld"]
            lines.append(
                f"- MJX port, {'+'.join(sm['tasks'])}, {sm['jax_envs']} envs: "
                f"{_fmt(sm['jax_steps_per_s'])} steps/s vs the original's "
                f"{_fmt(sm['reference_steps_per_s'])} on the same tasks: "
                f"**{sm['ratio']:.1f}x**."
            )
        lines.append("")
    if "protocol" in s and "error" not in s["protocol"]:
        p = s["protocol"]
        lines += [
            f"**Paper protocol wall time** ({p['benchmark']} x {p['method']}, 400k steps per "
            f"task, {p['target_seeds']} seeds): {p['projected_wall_s'] / 3600:.2f} h "
            f"({p['projection']}: {p['updates']} updates at {p['s_per_update']:.2f} s and "
            f"{p['evaluations']} evaluations at {p['s_per_evaluation']:.2f} s for "
            f"{p['measured_seeds']} seeds).",
            "",
        ]
    if "sac" in s and "error" not in s["sac"] and s["sac"]["rows"]:
        lines += [
            "**MT-SAC on the ported Meta-World tasks** (environment and update together)",
            "",
            "| seeds | tasks | envs/task | s / update | env steps/s | gradient steps/s per seed "
            "| compile s |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in s["sac"]["rows"]:
            lines.append(
                f"| {row['seeds']} | {'+'.join(row['tasks'])} | {row['envs_per_task']} | "
                f"{row['s_per_update']:.2f} | {_fmt(row['env_steps_per_s'])} | "
                f"{row['gradient_steps_per_s_per_seed']:.1f} | {row['compile_s']:.0f} |"
            )
        lines.append("")
    if "maskgen" in s and "error" not in s["maskgen"] and s["maskgen"]["rows"]:
        mg = s["maskgen"]
        lines += [
            f"**Mask generator cost** (multi-task SAC step at MT10's learner sizes on "
            f"{mg['env']}; one environment step of the suite and one gradient step; similarity "
            f"phase every {mg['every']} steps, amortised)",
            "",
            "| seeds | generator | s / step | phase s | steps/s per seed (amortised) | "
            "vs without | compile s |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in mg["rows"]:
            gen = "none" if row["ratio"] is None else f"ratio {row['ratio']}"
            phase = f"{row['phase_s']:.2f}" if "phase_s" in row else "-"
            lines.append(
                f"| {row['seeds']} | {gen} | {row['s_per_step'] * 1000:.1f} ms | {phase} | "
                f"{row['gradient_steps_per_s_per_seed']:.1f} | {row['vs_without']:.2f} | "
                f"{row['compile_s']:.0f} |"
            )
        lines.append("")
        for f in mg["flops"]:
            lines.append(
                f"- FLOPs per sample (forward, actor + twin critics) at ratio {f['ratio']}: "
                f"{f['networks_dense'] / 1e6:.2f} M dense, {f['networks_masked'] / 1e6:.3f} M "
                f"with the masked neurons removed, {f['generators'] / 1e6:.2f} M for the "
                f"generators: masked networks and generators together need "
                f"{f['masked_plus_generators'] / f['networks_dense']:.2f}x the dense networks' "
                "FLOPs."
            )
        lines.append("")
    errors = {k: v["error"] for k, v in s.items() if isinstance(v, dict) and "error" in v}
    for k, e in errors.items():
        lines += [f"- section `{k}` failed: `{e.splitlines()[-1]}`", ""]
    return lines


def render_results(runs: list[dict]) -> str:
    """The generated part of RESULTS.md: the runs grouped by device, newest first."""
    lines = [
        BEGIN,
        "## `make bench`: every recorded run, grouped by device",
        "",
        "Generated by `benchmarks/bench.py` from `benchmarks/results/bench-*.json` (do not edit "
        "between the markers).",
        "",
    ]
    by_device: dict[str, list[dict]] = {}
    for r in runs:
        by_device.setdefault(r["device"]["name"], []).append(r)
    for device, rs in sorted(by_device.items()):
        lines += [f"## Device: {device}", ""]
        for r in sorted(rs, key=lambda r: r["time"], reverse=True):
            lines += render_run(r)
    lines.append(END)
    return "\n".join(lines) + "\n"


def update_results_md(results_dir: pathlib.Path, md: pathlib.Path) -> None:
    runs = []
    for p in sorted(results_dir.glob("bench-*.json")):
        r = json.loads(p.read_text())
        if r.get("mode") != "tiny":
            runs.append(r)
    block = render_results(runs)
    text = md.read_text() if md.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    md.write_text(text)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=list(MODES), default="quick")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument("--results-dir", default=str(HERE / "results"))
    parser.add_argument("--results-md", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--no-results-md", action="store_true", help="write only the JSON")
    parser.add_argument("--train-seeds", help="override the mode's seed counts, e.g. 16,30")
    parser.add_argument(
        "--train-methods", help="override the mode's training methods, e.g. dense,gmp"
    )
    parser.add_argument(
        "--mw-tasks", help="Meta-World tasks of the env section, e.g. reach-v3 (default: ported)"
    )
    parser.add_argument("--mw-sizes", help="Meta-World envs per task, e.g. 16,128")
    parser.add_argument("--sac-seeds", help="seed counts of the sac section, e.g. 1,4,10")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; allowed: {', '.join(SECTIONS)}")
    mode = dict(MODES[args.mode])
    if args.train_seeds:
        mode["train_seeds"] = [int(x) for x in args.train_seeds.split(",")]
        if min(mode["train_seeds"]) < 1:
            parser.error("--train-seeds: seed counts must be >= 1")
    if args.sac_seeds:
        mode["sac_seeds"] = [int(x) for x in args.sac_seeds.split(",")]
        if min(mode["sac_seeds"]) < 1:
            parser.error("--sac-seeds: seed counts must be >= 1")
    if args.mw_tasks or args.mw_sizes:
        from envs.metaworld import PORTED_TASKS

        tasks = args.mw_tasks.split(",") if args.mw_tasks else list(PORTED_TASKS)
        if not set(tasks) <= set(PORTED_TASKS):
            parser.error(f"--mw-tasks: ported tasks are {','.join(PORTED_TASKS)}")
        mode["mw_tasks"] = tasks
        if args.mw_sizes:
            mode["mw_sizes"] = [int(x) for x in args.mw_sizes.split(",")]
        elif not mode["mw_sizes"]:
            mode["mw_sizes"] = list(MODES["full"]["mw_sizes"])
    if args.train_methods:
        methods = args.train_methods.split(",")
        allowed = MODES["full"]["train_methods"]
        if not set(methods) <= set(allowed) or "dense" not in methods:
            parser.error(f"--train-methods: a subset of {','.join(allowed)} that includes dense")
        mode["train_methods"] = methods
    if args.mode != "full" and "sac" in sections:
        sections.remove("sac")  # minutes of MJX compile per seed count: full mode only
    if args.mode == "tiny" and "maskgen" in sections:
        sections.remove("maskgen")  # MT10-sized SAC learners: quick and full modes

    start = time.time()
    result: dict[str, Any] = {
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": args.mode,
        "device": device_info(),
        "versions": versions(),
        "commit": git_commit(),
        "loadavg": list(os.getloadavg()),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in mode.items()},
        "sections": {},
    }
    print(f"bench ({args.mode}) on {result['device']['name']}, jax {jax.__version__}", flush=True)
    cache = _Cache()
    out = result["sections"]

    def run(name: str, fn: Callable[[], dict]) -> None:
        if name not in sections:
            return
        t = time.time()
        try:
            out[name] = fn()
        except Exception:  # one failing section must not lose the others' figures
            out[name] = {"error": traceback.format_exc()}
            print(f"  section {name} failed:\n{out[name]['error']}", flush=True)
        out[name]["section_wall_s"] = time.time() - t

    run("env", lambda: env_section(mode))
    run("train", lambda: train_section(mode, cache))
    ok = lambda k: out.get(k) if out.get(k) and "error" not in out[k] else None  # noqa: E731
    run("flops", lambda: flops_section(mode, cache, ok("train")))
    run("profile", lambda: profile_section(mode, cache))
    run("baselines", lambda: baselines_section(mode, cache, ok("train"), ok("env")))
    run("protocol", lambda: protocol_section(mode, cache, ok("train")))
    run("sac", lambda: sac_section(mode))
    run("maskgen", lambda: maskgen_section(mode))
    result["wall_s"] = time.time() - start

    results_dir = pathlib.Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["time"].replace("-", "").replace(":", "")
    path = results_dir / f"bench-{args.mode}-{result['device']['platform']}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path} ({result['wall_s'] / 60:.1f} min)", flush=True)
    if not args.no_results_md:
        update_results_md(results_dir, pathlib.Path(args.results_md))
        print(f"updated {args.results_md}", flush=True)
    failed = [k for k, v in out.items() if "error" in v]
    if failed:
        print(f"sections failed: {failed}", flush=True)
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
