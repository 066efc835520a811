"""From a validated ``ExperimentConfig`` to the pure functions the runner compiles.

Schedules in the config are in environment steps per task (and fractions of training); the PPO
trainer counts PPO updates, so they are converted here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax

from jaxsparse.algos.ppo import PPO, PPOConfig
from jaxsparse.nets import make_network
from jaxsparse.nets.mlp import MLPActorCritic
from jaxsparse.plasticity.interventions import PlasticityConfig
from jaxsparse.run.config import ExperimentConfig, MethodConfig
from jaxsparse.run.envs import (
    FlaxAgent,
    GymnaxVecEnv,
    MiniGridVecEnv,
    minigrid_inputs,
    vector_inputs,
)
from jaxsparse.sparsity import SparseMethod, default_filter, make_method
from jaxsparse.sparsity.plan import Plan

Array = jax.Array

# Method-specific defaults for the schedule window, as fractions of training.
_WINDOWS = {"gmp": (0.05, 0.8), "grow": (0.05, 0.8), "set": (0.0, None), "rigl": (0.0, None)}


def steps_to_updates(steps: float, steps_per_update: int) -> int:
    """Environment steps per task -> PPO updates, rounded to the nearest update."""
    return int(steps / steps_per_update + 0.5)


def make_sparse_method(m: MethodConfig, num_updates: int, steps_per_update: int) -> SparseMethod:
    """A core method with its schedule on the PPO-update clock."""
    if m.method == "dense":
        return make_method("dense")
    kwargs: dict[str, Any] = {"sparsity": m.sparsity}
    if m.distribution is not None:
        kwargs["distribution"] = m.distribution
    if m.method in _WINDOWS:
        start_f, end_f = _WINDOWS[m.method]
        start_f = m.start if m.start is not None else start_f
        end_f = m.end if m.end is not None else end_f
        kwargs["start"] = int(start_f * num_updates + 0.5)
        kwargs["freq"] = max(1, steps_to_updates(m.freq, steps_per_update))
        if end_f is not None:
            kwargs["end"] = max(kwargs["start"] + 1, int(end_f * num_updates + 0.5))
    if m.method in ("set", "rigl"):
        kwargs["drop_fraction"] = m.drop_fraction
    if m.method == "grow":
        kwargs["final_sparsity"] = m.final_sparsity
    return make_method(m.method, **kwargs)


@dataclass(frozen=True)
class Trainer:
    """What the runner needs: pure per-seed ``init`` and ``chunk`` and the bookkeeping sizes."""

    algo: PPO
    updates_per_chunk: int
    num_chunks: int
    steps_per_update: int
    task_names: tuple[str, ...]

    def init(self, key: Array) -> Any:
        return self.algo.init(key)

    def chunk(self, state: Any) -> tuple[Any, dict[str, Any]]:
        """``updates_per_chunk`` PPO updates (``lax.scan``), then a greedy evaluation (and the
        plasticity diagnostics when on)."""
        state, train = jax.lax.scan(
            lambda s, _: self.algo.update(s), state, None, self.updates_per_chunk
        )
        evaluation = self.algo.evaluate(state.params, jax.random.fold_in(state.key, 0x5EED))
        out = {"train": train, "eval": evaluation}
        if self.algo.plasticity.diagnostics:
            out["diag"] = self.algo.diagnose(state, jax.random.fold_in(state.key, 0xF15E))
        return state, out


def build_plan(cfg: ExperimentConfig, num_updates: int) -> Plan:
    spu = cfg.steps_per_update
    default = make_sparse_method(cfg.sparsity, num_updates, spu)
    if not cfg.sparsity.modules:
        return default
    plan = {"*": default}
    for prefix, m in cfg.sparsity.modules.items():
        plan[prefix] = make_sparse_method(m, num_updates, spu)
    return plan


def build_trainer(cfg: ExperimentConfig) -> Trainer:
    e, n = cfg.env, cfg.net
    if e.kind == "minigrid":
        env = MiniGridVecEnv(e.suite, e.num_envs_per_task)
        eval_env = MiniGridVecEnv(e.suite, e.eval_episodes_per_task)
        module = make_network(
            n.arch,
            env.num_tasks,
            env.num_actions,
            n_experts=n.n_experts,
            layer_norm=n.layer_norm,
            shared_encoder=n.shared_encoder,
        )
        net = FlaxAgent(module, minigrid_inputs, task_major=True)
    else:
        env = GymnaxVecEnv(e.suite, e.num_envs_per_task, e.best_return)
        eval_env = GymnaxVecEnv(e.suite, e.eval_episodes_per_task, e.best_return)
        net = FlaxAgent(MLPActorCritic(env.num_actions, hidden=n.hidden), vector_inputs)
    spu = cfg.steps_per_update
    num_updates = cfg.train.total_steps // spu

    def filter_fn(path: str, leaf: Any) -> bool:
        if not n.prune_task_weights and "task_weights" in path.split("/"):
            return False
        return default_filter(path, leaf)

    pl = cfg.plasticity

    def every(steps: int) -> int:
        return max(1, steps_to_updates(steps, spu)) if steps else 0

    plasticity = PlasticityConfig(
        diagnostics=cfg.diagnostics,
        batch=pl.batch,
        tau=pl.tau,
        redo_every=every(pl.redo_every),
        redo_tau=pl.redo_tau,
        reset_every=every(pl.reset_every),
        reset_max=pl.reset_max,
    )
    algo = PPO(
        PPOConfig(**cfg.ppo.model_dump()),
        env,
        net,
        build_plan(cfg, num_updates),
        eval_env=eval_env,
        filter_fn=filter_fn,
        plasticity=plasticity,
    )
    updates_per_chunk = cfg.train.eval_every // spu
    return Trainer(
        algo=algo,
        updates_per_chunk=updates_per_chunk,
        num_chunks=num_updates // updates_per_chunk,
        steps_per_update=spu,
        task_names=tuple(env.task_names),
    )
