"""From a validated ``ExperimentConfig`` to the pure functions the runner compiles.

Schedules in the config are in environment steps per task (and fractions of training); the PPO
trainer counts PPO updates, so they are converted here, once.

SAC (``algo: sac``) counts gradient steps: its mask clock is the number of gradient steps done
counting the current one, i.e. suite steps minus ``sac.warmup_steps`` (``jaxsparse.algos.sac``).
Schedule fractions (``start``, ``end``) are fractions of the gradient steps of the run
(``train.total_steps - sac.warmup_steps``): ``start: 0`` is the first gradient step, ``end: 1``
the last, whatever the warm-up. ``freq`` (suite steps) is the same number of gradient steps (one
per suite step). ``SACTrainee`` adapts SAC's outputs to the runner's logs (``score``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from jaxsparse.algos.maskgen import MaskGenConfig
from jaxsparse.algos.ppo import PPO, PPOConfig
from jaxsparse.algos.sac import SAC, SACConfig, SACState
from jaxsparse.algos.sac_envs import ContinuousGymnaxVecEnv
from jaxsparse.algos.task_suite import TaskSuite, metaworld_suite
from jaxsparse.nets import make_network
from jaxsparse.nets.mlp import MLPActorCritic
from jaxsparse.nets.sac_archs import SoftModSpec
from jaxsparse.plasticity.interventions import PlasticityConfig
from jaxsparse.run.config import (
    MOORE_SAC_EXPERTS,
    ConfigError,
    ExperimentConfig,
    MethodConfig,
    metaworld_tasks,
)
from jaxsparse.run.envs import (
    FlaxAgent,
    GymnaxVecEnv,
    MiniGridVecEnv,
    minigrid_inputs,
    vector_inputs,
)
from jaxsparse.sparsity import SparseMethod, default_filter, make_method
from jaxsparse.sparsity.masks import FilterFn
from jaxsparse.sparsity.plan import Plan, resolve_plan

Array = jax.Array

# Method-specific defaults for the schedule window, as fractions of training.
_WINDOWS = {"gmp": (0.05, 0.8), "grow": (0.05, 0.8), "set": (0.0, None), "rigl": (0.0, None)}


# The layers that read only the one-hot task id: MoE/MOORE's task weights (T x n_experts) and
# Soft Modularization's task embedding (T x width).
TASK_LAYERS = ("task_weights", "task_embedding")


def task_layer_filter(prune_task_layers: bool) -> FilterFn:
    """``default_filter``, without the task layers (``TASK_LAYERS``) unless ``prune_task_layers``
    (``net.prune_task_weights``): pruned to the global sparsity they would cut whole tasks off
    their experts / routing."""

    def filter_fn(path: str, leaf: Any) -> bool:
        if not prune_task_layers and any(p in TASK_LAYERS for p in path.split("/")):
            return False
        return default_filter(path, leaf)

    return filter_fn


def steps_to_updates(steps: float, steps_per_update: int) -> int:
    """Environment steps per task -> PPO updates, rounded to the nearest update."""
    return int(steps / steps_per_update + 0.5)


def make_sparse_method(m: MethodConfig, num_updates: int, steps_per_update: int) -> SparseMethod:
    """A core method with its schedule on the algorithm's mask clock: ``num_updates`` ticks in
    the run, ``steps_per_update`` environment steps per tick (PPO: PPO updates; SAC: gradient
    steps, one suite step each, so ``steps_per_update=1``)."""
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


class SACTrainee:
    """``SAC`` with the runner's log contract: ``score`` in the evaluation and ``score_sum`` in
    the update metrics. With ``best_return`` (gymnax) ``score = (return - random_return) /
    (best_return - random_return)``; without (Meta-World) the score is the success rate, the
    metric of MT10. The per-task temperatures ``alpha [T]`` also go out as their mean
    ``alpha_mean`` (a train.csv column). ``init``/``update``/``evaluate``/``diagnose`` are
    SAC's otherwise."""

    def __init__(
        self, sac: SAC, best_return: float | None = None, random_return: float = 0.0
    ) -> None:
        if best_return is not None and best_return <= random_return:
            raise ValueError(f"best_return ({best_return}) must exceed random ({random_return})")
        self.sac = sac
        self.diagnostics = sac.plasticity.diagnostics
        self.best_return = None if best_return is None else float(best_return)
        self.random_return = float(random_return)

    def score(self, returns: Array) -> Array:
        """Normalised returns (gymnax); only with ``best_return``."""
        if self.best_return is None:
            raise ValueError("this trainee scores success rates, not returns (no best_return)")
        return (returns - self.random_return) / (self.best_return - self.random_return)

    def init(self, key: Array) -> SACState:
        return self.sac.init(key)

    def update(self, state: SACState) -> tuple[SACState, dict[str, Array]]:
        state, metrics = self.sac.update(state)
        if self.best_return is None:
            metrics["score_sum"] = metrics["success_sum"]
        else:
            # Over finished episodes: sum((R_i - random) / range) = (sum R_i - n random) / range.
            metrics["score_sum"] = (
                metrics["return_sum"] - metrics["episodes"] * self.random_return
            ) / (self.best_return - self.random_return)
        metrics["alpha_mean"] = metrics["alpha"].mean()
        return state, metrics

    def evaluate(self, params: Any, key: Array) -> dict[str, Array]:
        out = self.sac.evaluate(params, key)
        out["score"] = out["success"] if self.best_return is None else self.score(out["return"])
        return out

    def diagnose(self, state: SACState, key: Array) -> dict[str, Array]:
        return self.sac.diagnose(state, key)


@dataclass(frozen=True)
class Trainer:
    """What the runner needs: pure per-seed ``init`` and ``chunk`` and the bookkeeping sizes.

    ``algo`` is a ``PPO`` or a ``SACTrainee``; ``steps_per_update`` is in the config's step unit
    (PPO: environment steps per task; SAC: suite steps), ``transitions_per_step`` the environment
    transitions per such step and seed (PPO: one per task; SAC: every environment).
    """

    algo: PPO | SACTrainee
    updates_per_chunk: int
    num_chunks: int
    steps_per_update: int
    task_names: tuple[str, ...]
    transitions_per_step: int | None = None  # None: len(task_names)
    compiler_options: dict[str, Any] | None = None  # XLA options of the compiled programs

    @property
    def diagnostics(self) -> bool:
        if isinstance(self.algo, PPO):
            return self.algo.plasticity.diagnostics
        return self.algo.diagnostics

    def init(self, key: Array) -> Any:
        return self.algo.init(key)

    def train_chunk(self, state: Any) -> tuple[Any, dict[str, Any]]:
        """``updates_per_chunk`` updates (``lax.scan``): the new state and their metrics."""
        return jax.lax.scan(lambda s, _: self.algo.update(s), state, None, self.updates_per_chunk)

    def evaluate(self, params: Any, key: Array) -> dict[str, Array]:
        """The greedy evaluation after a chunk (``key``: the state's key after it)."""
        return self.algo.evaluate(params, jax.random.fold_in(key, 0x5EED))

    def diagnose(self, state: Any) -> dict[str, Array]:
        """The plasticity diagnostics after a chunk (only when they are on)."""
        return self.algo.diagnose(state, jax.random.fold_in(state.key, 0xF15E))

    def chunk(self, state: Any) -> tuple[Any, dict[str, Any]]:
        """``train_chunk``, then ``evaluate`` (and ``diagnose`` when on), as one function. The
        runner compiles the three as separate programs (the same computation): XLA's compile
        time grows faster than the program's size, which matters for the Meta-World suite on CPU,
        and the evaluation program, which reads only the parameters and the key, is the same for
        every sparsity method of an architecture (the persistent compilation cache shares it)."""
        state, train = self.train_chunk(state)
        out = {"train": train, "eval": self.evaluate(state.params, state.key)}
        if self.diagnostics:
            out["diag"] = self.diagnose(state)
        return state, out


def sac_gradient_steps(cfg: ExperimentConfig) -> int:
    """Gradient steps of a SAC run: one per suite step after the warm-up."""
    return cfg.train.total_steps - cfg.sac.warmup_steps


def build_plan(cfg: ExperimentConfig, num_updates: int | None = None) -> Plan:
    """The sparsity plan on the algorithm's mask clock (PPO: ``num_updates`` PPO updates; SAC:
    ``sac_gradient_steps(cfg)`` gradient steps, ``num_updates`` unused). ``sparsity.modules``
    maps parameter-path prefixes to methods (SAC: ``actor``, ``critic``, or deeper paths such
    as ``critic/critic_0``); the top-level method covers the rest."""
    if cfg.algo == "sac":
        ticks, spu = sac_gradient_steps(cfg), 1
    else:
        if num_updates is None:
            raise ValueError("build_plan needs num_updates for PPO")
        ticks, spu = num_updates, cfg.steps_per_update
    default = make_sparse_method(cfg.sparsity, ticks, spu)
    if not cfg.sparsity.modules:
        return default
    plan = {"*": default}
    for prefix, m in cfg.sparsity.modules.items():
        plan[prefix] = make_sparse_method(m, ticks, spu)
    return plan


def metaworld_envs(cfg: ExperimentConfig) -> tuple[TaskSuite, TaskSuite]:
    """The training and evaluation suites of ``env.kind: metaworld``: the tasks of
    ``env.suite``, ``env.num_envs_per_task`` / ``env.eval_episodes_per_task`` copies of each;
    with ``env.fixed_goals = K`` both draw their resets from the same K reset vectors per task
    (sampled once from ``seed``, the same for every seed of the run)."""
    e = cfg.env
    tasks = metaworld_tasks(e.suite)
    key = jax.random.PRNGKey(cfg.seed) if e.fixed_goals else None
    env = metaworld_suite(tasks, e.num_envs_per_task, fixed_goals=e.fixed_goals, goal_key=key)
    goals = {t: env.envs[i].goals for i, t in enumerate(tasks)} if e.fixed_goals else None
    eval_env = metaworld_suite(tasks, e.eval_episodes_per_task, goals=goals)
    return env, eval_env


def check_sac_plan(sac: SAC, obs_dim: int, arch: str) -> None:
    """Raise ``ConfigError`` before anything compiles when a ``sparsity.modules`` key names no
    prunable layer of ``arch``'s networks (parameter shapes from ``jax.eval_shape``: a key such
    as ``critic/critic_0/Dense_0`` is an ``mtmhsac`` layer)."""
    T = sac.env.num_tasks
    obs = jax.ShapeDtypeStruct((T, obs_dim), jnp.float32)
    task = jax.ShapeDtypeStruct((T,), jnp.int32)
    params = jax.eval_shape(sac.net.init, jax.random.PRNGKey(0), obs, task)
    for name, plan in sac.plans.items():
        try:
            resolve_plan(plan, {name: params[name]}, sac.filter_fn)
        except ValueError as err:
            raise ConfigError(f"sparsity.modules with net.arch {arch!r}: {err}") from None


def build_sac_trainer(cfg: ExperimentConfig) -> Trainer:
    """SAC on Meta-World tasks (MJX, scored by success rate) or on one continuous gymnax
    environment (``env.num_envs_per_task`` copies, one task, scored by normalised return)."""
    e, sc = cfg.env, cfg.sac
    options = None
    if e.kind == "metaworld":
        env, eval_env = metaworld_envs(cfg)
        best_return, random_return = None, 0.0
        if jax.default_backend() == "cpu":
            from envs.metaworld import CPU_COMPILER_OPTIONS

            options = dict(CPU_COMPILER_OPTIONS)
    else:
        env = ContinuousGymnaxVecEnv(e.suite, e.num_envs_per_task)
        eval_env = ContinuousGymnaxVecEnv(e.suite, e.eval_episodes_per_task)
        best_return = e.best_return
        random_return = 0.0 if e.random_return is None else e.random_return
    n = cfg.net
    fields = sc.model_dump()
    fields["actor_hidden"] = tuple(sc.actor_hidden)
    fields["critic_hidden"] = tuple(sc.critic_hidden)
    fields["arch"] = n.arch
    fields["n_experts"] = n.n_experts if n.n_experts is not None else MOORE_SAC_EXPERTS
    fields["softmod"] = SoftModSpec(**n.softmod.model_dump())
    pl = cfg.plasticity
    plasticity = PlasticityConfig(diagnostics=cfg.diagnostics, batch=pl.batch, tau=pl.tau)
    mg = cfg.maskgen
    maskgen = None
    if mg.enabled:
        kw = mg.model_dump(exclude={"enabled"})
        maskgen = MaskGenConfig(**{**kw, "hidden": tuple(mg.hidden)})
    sac = SAC(
        SACConfig(**fields),
        env,
        build_plan(cfg),
        eval_env=eval_env,
        filter_fn=task_layer_filter(n.prune_task_weights),
        plasticity=plasticity,
        maskgen=maskgen,
    )
    check_sac_plan(sac, env.obs_dim, n.arch)
    spu = cfg.steps_per_update
    updates_per_chunk = cfg.train.eval_every // spu
    return Trainer(
        algo=SACTrainee(sac, best_return, random_return),
        updates_per_chunk=updates_per_chunk,
        num_chunks=cfg.train.total_steps // cfg.train.eval_every,
        steps_per_update=spu,
        task_names=tuple(env.task_names),
        transitions_per_step=env.num_envs,
        compiler_options=options,
    )


def build_trainer(cfg: ExperimentConfig) -> Trainer:
    if cfg.algo == "sac":
        return build_sac_trainer(cfg)
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

    filter_fn = task_layer_filter(n.prune_task_weights)
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
