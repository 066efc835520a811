"""Several Brax-API environments (the Meta-World tasks) as one vector environment: the MT10
suite behind SAC's interface.

`TaskSuite(envs, num_envs_per_task)` holds `num_envs_per_task` copies of each task's environment
in task-major blocks (rows `[t * n, (t + 1) * n)` are task `t`); each block is stepped with its
own environment (its own MJX model: a Python loop over tasks inside the jitted step, `vmap` over
the block's copies), so tasks with different scenes run in one program. The interface is the
one `jaxsparse.algos.sac` takes (`jaxsparse.algos.sac_envs`): `reset(key) -> (obs, state)`,
`step(key, state, actions) -> EnvStep`, actions `[N, action_dim]` in `[-1, 1]`, observations
`[N, obs_dim]` with the task's one-hot id appended (Meta-World's MT benchmarks), `task_ids`.

Episodes: a block whose episodes end (Meta-World truncates every episode at step 500 and never
terminates, so a task's copies end together) is reset in the same step with fresh reset vectors
(`EnvStep.final_obs` keeps the last observation), under `cond_any`: the reset's forward pass
runs only on steps where some episode ended. `EnvStep.success` is Meta-World's per-step
`info["success"]`; SAC counts an episode as a success if it held at any step.

Large blocks: `max_vmap = m` steps and resets a block as `lax.map` over chunks of at most `m`
`vmap`ped copies (`chunked_vmap`). `metaworld_suite` sets it to `CPU_SAFE_BATCH` on CPU, where
one `vmap`ped MJX step over more than 256 environments compiles and then never returns.

`metaworld_suite(["reach-v3", "push-v3"], 8)` builds them with `envs.metaworld.make`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from brax.envs.base import Env, State

from jaxsparse.algos.ppo import EnvStep
from jaxsparse.sparsity.checks import check_int
from jaxsparse.sparsity.control import cond_any

Array = jax.Array

# The most Meta-World environments one vmapped MJX step is known to run over on CPU: above it
# (320 tried) the program deadlocks in XLA's CPU runtime (envs/metaworld/README.md, CPU note).
CPU_SAFE_BATCH = 256


def chunked_vmap(fn: Callable[..., Any], batch: int, chunk: int | None) -> Callable[..., Any]:
    """`vmap(fn)` over a leading axis of `batch`, computed as `lax.map` over chunks of at most
    `chunk` vmapped rows (a last, smaller `vmap` takes the remainder); `chunk=None` is plain
    `vmap`. The result equals `vmap(fn)`'s: only the program's batch per kernel changes."""
    if chunk is None or batch <= chunk:
        return jax.vmap(fn)
    check_int("chunk", chunk, minimum=1)
    n, rest = divmod(batch, chunk)

    def mapped(*args: Any) -> Any:
        head = jax.tree.map(lambda x: x[: n * chunk].reshape((n, chunk, *x.shape[1:])), args)
        out = jax.lax.map(lambda a: jax.vmap(fn)(*a), head)
        out = jax.tree.map(lambda x: x.reshape((n * chunk, *x.shape[2:])), out)
        if not rest:
            return out
        tail = jax.vmap(fn)(*jax.tree.map(lambda x: x[n * chunk :], args))
        return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, tail)

    return mapped


def _where(pred: Array, on_true: Any, on_false: Any) -> Any:
    """Per-environment select between two batched pytrees (`pred` is `[n]`)."""

    def pick(a: Array, b: Array) -> Array:
        return jnp.where(pred.reshape(pred.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, on_true, on_false)


class TaskSuite:
    """One environment per task, `num_envs_per_task` copies of each, task-major, auto-reset."""

    def __init__(
        self,
        envs: Sequence[Env],
        num_envs_per_task: int,
        task_names: Sequence[str] | None = None,
        max_episode_steps: int = 500,
        append_task_id: bool = True,
        max_vmap: int | None = None,
    ) -> None:
        check_int("num_envs_per_task", num_envs_per_task, minimum=1)
        if max_vmap is not None:
            check_int("max_vmap", max_vmap, minimum=1)
        check_int("max_episode_steps", max_episode_steps, minimum=1)
        envs = tuple(envs)
        if not envs:
            raise ValueError("a task suite needs at least one environment")
        names = tuple(task_names) if task_names is not None else tuple(map(str, range(len(envs))))
        if len(names) != len(envs):
            raise ValueError(f"{len(names)} task names for {len(envs)} environments")
        obs = {e.observation_size for e in envs}
        act = {e.action_size for e in envs}
        if len(obs) != 1 or len(act) != 1:
            raise ValueError(
                f"every task must have the same observation and action sizes, got observation "
                f"sizes {sorted(obs)} and action sizes {sorted(act)}"
            )
        self.envs = envs
        self.task_names = names
        self.num_tasks = len(envs)
        self.per_task = num_envs_per_task
        self.num_envs = self.num_tasks * num_envs_per_task
        self.task_ids = np.repeat(np.arange(self.num_tasks, dtype=np.int32), num_envs_per_task)
        self.action_dim = int(act.pop())
        self.append_task_id = append_task_id
        self.obs_dim = int(obs.pop()) + (self.num_tasks if append_task_id else 0)
        self.max_episode_steps = max_episode_steps
        self.max_vmap = max_vmap
        self._one_hot = jax.nn.one_hot(self.task_ids, self.num_tasks, dtype=jnp.float32)

    # ------------------------------------------------------------------ internals
    def _obs(self, per_task: Sequence[Array]) -> Array:
        obs = jnp.concatenate([jnp.asarray(o, jnp.float32) for o in per_task], axis=0)
        return jnp.concatenate([obs, self._one_hot], axis=1) if self.append_task_id else obs

    def _vmap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return chunked_vmap(fn, self.per_task, self.max_vmap)

    def _reset_task(self, t: int, key: Array) -> State:
        return self._vmap(self.envs[t].reset)(jax.random.split(key, self.per_task))

    # ------------------------------------------------------------------ the interface
    def reset(self, key: Array) -> tuple[Array, tuple[State, ...]]:
        """Every copy of every task starts a new episode; `state` is a tuple of per-task States."""
        keys = jax.random.split(key, self.num_tasks)
        states = tuple(self._reset_task(t, keys[t]) for t in range(self.num_tasks))
        return self._obs([s.obs for s in states]), states

    def step(self, key: Array, state: tuple[State, ...], actions: Array) -> EnvStep:
        """One step of every copy; episodes that end are reset in the same step."""
        actions = jnp.asarray(actions, jnp.float32)
        if actions.shape != (self.num_envs, self.action_dim):
            raise ValueError(
                f"actions must have shape [num_envs, action_dim] = "
                f"[{self.num_envs}, {self.action_dim}], got {list(actions.shape)}"
            )
        actions = jnp.clip(actions, -1.0, 1.0)
        keys = jax.random.split(key, self.num_tasks)
        n = self.per_task
        new_states, final_obs, rewards, terminated, truncated, success = [], [], [], [], [], []
        for t, env in enumerate(self.envs):
            s = self._vmap(env.step)(state[t], actions[t * n : (t + 1) * n])
            done = s.done > 0
            trunc = s.info.get("truncation", jnp.zeros_like(s.done)) > 0
            final_obs.append(s.obs)
            rewards.append(jnp.asarray(s.reward, jnp.float32))
            terminated.append(done & ~trunc)
            truncated.append(done & trunc)
            success.append(s.metrics.get("success", jnp.zeros_like(s.reward)) > 0)

            def reset_ended(ops, t=t):
                s, done, k = ops
                return _where(done, self._reset_task(t, k), s)

            s = cond_any(jnp.any(done), reset_ended, lambda ops: ops[0], (s, done, keys[t]))
            new_states.append(s)
        return EnvStep(
            obs=self._obs([s.obs for s in new_states]),
            state=tuple(new_states),
            reward=jnp.concatenate(rewards),
            terminated=jnp.concatenate(terminated),
            truncated=jnp.concatenate(truncated),
            final_obs=self._obs(final_obs),
            success=jnp.concatenate(success),
        )


def metaworld_suite(
    tasks: Sequence[str],
    num_envs_per_task: int,
    goals: dict[str, Any] | None = None,
    goal_observable: bool = True,
    fixed_goals: int = 0,
    goal_key: Array | None = None,
) -> TaskSuite:
    """A `TaskSuite` of Meta-World tasks (names as `envs.metaworld.make`).

    `goals` maps a task name to its fixed reset vectors (Meta-World's fixed-goal mode), others
    sample freely. `fixed_goals = K > 0` instead draws K reset vectors for every task once with
    `goal_key` (the task's own sampling rule; task `t` uses `fold_in(goal_key, t)`) and every
    reset picks one of them (K = 50 is Meta-World's MT10 benchmark, K = 1 its fixed-goal mode).
    """
    from envs.metaworld import MAX_PATH_LENGTH, make

    check_int("fixed_goals", fixed_goals, minimum=0)
    goals = dict(goals or {})
    unknown = set(goals) - set(tasks)
    if unknown:
        raise ValueError(f"goals given for tasks not in the suite: {sorted(unknown)}")
    if fixed_goals and (goals or goal_key is None):
        raise ValueError("fixed_goals draws the goals itself: give goal_key and no goals")
    envs = [make(t, goals=goals.get(t), goal_observable=goal_observable) for t in tasks]
    for t, env in enumerate(envs) if fixed_goals else ():
        keys = jax.random.split(jax.random.fold_in(goal_key, t), fixed_goals)
        env.set_goals(np.asarray(jax.jit(jax.vmap(env.sample_rand_vec))(keys)))
    # On CPU one vmap(step) over more than CPU_SAFE_BATCH environments never returns (jax 0.10.2;
    # envs/metaworld/README.md, CPU note): larger blocks run as lax.map over chunks of it.
    max_vmap = CPU_SAFE_BATCH if jax.default_backend() == "cpu" else None
    if max_vmap is not None and num_envs_per_task > max_vmap and len(tasks) > 1:
        warnings.warn(
            f"num_envs_per_task={num_envs_per_task} on CPU: each task's block runs as chunks of "
            f"{max_vmap}, and one program holding several such tasks compiles for very long (MT10 "
            "at 512 per task: the reset alone ran 47 min without finishing; benchmarks/RESULTS.md)"
            "; CPU throughput is flat from 64 environments per task",
            stacklevel=2,
        )
    return TaskSuite(
        envs, num_envs_per_task, tasks, max_episode_steps=MAX_PATH_LENGTH, max_vmap=max_vmap
    )
