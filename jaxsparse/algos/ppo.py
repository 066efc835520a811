"""Multi-task PPO as pure functions (PureJaxRL style): ``init(key)`` and ``update(state)``.

One ``update`` collects a rollout of ``rollout_length`` steps from every environment of the
multi-task batch (``lax.scan`` over steps, the batch stepped at once), computes GAE with
truncations bootstrapped from the final observation, then fits the critic (``critic_epochs``
epochs, batch ``critic_batch``) and the policy (``policy_epochs`` epochs, minibatch
``policy_minibatch_per_task`` x T, as MOORE's code), in that order, as MOORE's mushroom-rl PPO
does. Advantages are normalised per task over the rollout (MOORE). Every batch the network sees
is task-major with equal blocks per task (minibatches are stratified by task), so multi-task
heads can run one matmul per task (``task_major=True``). All parameters share one optimiser,
wrapped by ``jaxsparse.sparsity.sparsify``: the mask step runs on the first optimiser update of
each PPO update, on a clock counted in PPO updates (``mask_step``): schedules given in
environment steps are converted to updates once (``jaxsparse.run``) and never drift with the
number of minibatches.

The environment is duck-typed (``jaxsparse.run.envs`` adapts MiniGrid suites and gymnax):
attributes ``num_envs``, ``num_tasks``, ``num_actions``, ``task_ids`` (int ``[N]``, task-major),
``best_returns`` (``[T]``), ``max_episode_steps``; ``reset(key) -> (obs, state)``;
``step(key, state, actions) -> EnvStep``. The network is any ``AgentNet``:
``init(key, obs) -> params`` and ``apply(params, obs) -> (logits [N, A], value [N])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxsparse.algos.ppo_losses import (
    categorical_log_prob_and_entropy,
    gae,
    ppo_policy_loss,
    value_loss,
)
from jaxsparse.sparsity import apply_masks, count_active, sparsify
from jaxsparse.sparsity.checks import check_int, check_range
from jaxsparse.sparsity.masks import FilterFn, default_filter
from jaxsparse.sparsity.plan import Plan
from jaxsparse.sparsity.transform import get_sparse_state

Array = jax.Array
PyTree = Any


class EnvStep(NamedTuple):
    """What an adapted environment's ``step`` returns (auto-reset in the same step)."""

    obs: PyTree  # next observation (of the new episode where one ended)
    state: PyTree
    reward: Array  # [N]
    terminated: Array  # [N] bool
    truncated: Array  # [N] bool, time limit (bootstrapped)
    final_obs: PyTree  # the last observation of an episode that ended, else anything
    success: Array  # [N] bool


class VecEnv(Protocol):
    num_envs: int
    num_tasks: int
    num_actions: int
    task_ids: np.ndarray
    best_returns: np.ndarray
    max_episode_steps: int

    def reset(self, key: Array) -> tuple[PyTree, PyTree]: ...
    def step(self, key: Array, state: PyTree, actions: Array) -> EnvStep: ...


class AgentNet(Protocol):
    def init(self, key: Array, obs: PyTree) -> PyTree: ...
    def apply(self, params: PyTree, obs: PyTree) -> tuple[Array, Array]: ...


@dataclass(frozen=True)
class PPOConfig:
    """PPO settings; the defaults are the sparsity paper's MiniGrid protocol (SPEC.md)."""

    rollout_length: int = 125  # steps per environment per update (x envs per task = 2000)
    lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    policy_epochs: int = 8
    policy_minibatch_per_task: int = 256  # MOORE: batch_size 256 x n_contexts
    critic_epochs: int = 1
    critic_batch: int = 2000  # in total; split evenly over tasks (rounded)
    max_grad_norm: float | None = None
    adam_eps: float = 1e-8
    weight_decay: float = 0.0  # decoupled (AdamW) when > 0
    advantage_norm: str = "task"  # "task" (MOORE), "batch", "minibatch" or "none"

    def __post_init__(self) -> None:
        names = ("rollout_length", "policy_epochs", "policy_minibatch_per_task", "critic_batch")
        for name in names:
            check_int(name, getattr(self, name), minimum=1)
        check_int("critic_epochs", self.critic_epochs, minimum=0)
        check_range("lr", self.lr, 0.0, np.inf, low_open=True)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_range("clip_eps", self.clip_eps, 0.0, np.inf, low_open=True)
        check_range("ent_coef", self.ent_coef, 0.0, np.inf)
        check_range("weight_decay", self.weight_decay, 0.0, np.inf)
        if self.max_grad_norm is not None:
            check_range("max_grad_norm", self.max_grad_norm, 0.0, np.inf, low_open=True)
        if self.advantage_norm not in ("task", "batch", "minibatch", "none"):
            raise ValueError(
                "advantage_norm must be one of ['task', 'batch', 'minibatch', 'none'], "
                f"got {self.advantage_norm!r}"
            )


class PPOState(struct.PyTreeNode):
    """Everything one seed's training carries between updates (checkpointed as is)."""

    params: PyTree
    opt_state: PyTree
    env_state: PyTree
    obs: PyTree
    running_return: Array  # [N] return of each environment's current episode
    key: Array
    update: Array  # int32, PPO updates done


class Transition(NamedTuple):
    obs: PyTree
    action: Array
    log_prob: Array
    value: Array
    reward: Array
    terminated: Array
    truncated: Array
    final_obs: PyTree
    episode_return: Array  # return of the episode that ended at this step, else 0
    success: Array


def _segment_mean_std(x: Array, task: Array, num_tasks: int) -> tuple[Array, Array]:
    count = jax.ops.segment_sum(jnp.ones_like(x), task, num_tasks)
    mean = jax.ops.segment_sum(x, task, num_tasks) / jnp.maximum(count, 1.0)
    var = jax.ops.segment_sum(jnp.square(x - mean[task]), task, num_tasks) / jnp.maximum(count, 1.0)
    return mean, jnp.sqrt(var)


def _take(tree: PyTree, idx: Array) -> PyTree:
    return jax.tree.map(lambda x: x[idx], tree)


def _task_major(tree: PyTree) -> PyTree:
    """``[L, N, ...]`` (N task-major) -> ``[N * L, ...]``: T equal task-major blocks."""
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape((-1, *x.shape[2:])), tree)


class PPO:
    """Pure ``init`` / ``update`` / ``evaluate`` for one seed; ``vmap`` them over seeds."""

    def __init__(
        self,
        config: PPOConfig,
        env: VecEnv,
        net: AgentNet,
        plan: Plan,
        eval_env: VecEnv | None = None,
        filter_fn: FilterFn = default_filter,
    ) -> None:
        self.config = config
        self.env = env
        self.eval_env = eval_env if eval_env is not None else env
        self.net = net
        self.plan = plan
        self.filter_fn = filter_fn
        self.batch_size = config.rollout_length * env.num_envs
        self.per_task = self.batch_size // env.num_tasks
        if config.policy_minibatch_per_task > self.per_task:
            raise ValueError(
                f"policy_minibatch_per_task ({config.policy_minibatch_per_task}) must be at most "
                f"rollout_length x envs per task = {self.per_task}"
            )
        self.policy_mb = config.policy_minibatch_per_task
        self.num_minibatches = self.per_task // self.policy_mb
        self.critic_mb = max(1, min(self.per_task, round(config.critic_batch / env.num_tasks)))
        self.num_critic_batches = self.per_task // self.critic_mb
        # Sample i of the task-major flattened batch belongs to task i // per_task.
        self.batch_task_ids = np.repeat(np.arange(env.num_tasks, dtype=np.int32), self.per_task)
        inner = []
        if config.max_grad_norm is not None:
            inner.append(optax.clip_by_global_norm(config.max_grad_norm))
        if config.weight_decay > 0:
            inner.append(
                optax.adamw(config.lr, eps=config.adam_eps, weight_decay=config.weight_decay)
            )
        else:
            inner.append(optax.adam(config.lr, eps=config.adam_eps))
        self.inner = optax.chain(*inner) if len(inner) > 1 else inner[0]
        # The update reads the PRNG key from the state, so one transform serves every seed;
        # ``init`` builds its own with the seed's key so that initial masks differ per seed.
        self.tx = sparsify(self.inner, plan, key=0, filter_fn=filter_fn)

    # ------------------------------------------------------------------ init
    def init(self, key: Array) -> PPOState:
        k_env, k_net, k_mask, k_run = jax.random.split(key, 4)
        obs, env_state = self.env.reset(k_env)
        params = self.net.init(k_net, obs)
        tx = sparsify(self.inner, self.plan, key=k_mask, filter_fn=self.filter_fn)
        opt_state = tx.init(params)
        params = apply_masks(params, opt_state.masks)
        return PPOState(
            params=params,
            opt_state=opt_state,
            env_state=env_state,
            obs=obs,
            running_return=jnp.zeros(self.env.num_envs, jnp.float32),
            key=k_run,
            update=jnp.zeros([], jnp.int32),
        )

    # --------------------------------------------------------------- rollout
    def _rollout(self, state: PPOState, key: Array) -> tuple[PPOState, Transition]:
        env, net = self.env, self.net

        def step(carry, k):
            obs, env_state, running = carry
            k_act, k_env = jax.random.split(k)
            logits, value = net.apply(state.params, obs)
            action = jax.random.categorical(k_act, logits)
            log_prob, _ = categorical_log_prob_and_entropy(logits, action)
            out = env.step(k_env, env_state, action)
            done = out.terminated | out.truncated
            ret = running + out.reward
            tr = Transition(
                obs=obs,
                action=action,
                log_prob=log_prob,
                value=value,
                reward=out.reward,
                terminated=out.terminated,
                truncated=out.truncated,
                final_obs=out.final_obs,
                episode_return=jnp.where(done, ret, 0.0),
                success=out.success & done,
            )
            return (out.obs, out.state, jnp.where(done, 0.0, ret)), tr

        keys = jax.random.split(key, self.config.rollout_length)
        (obs, env_state, running), traj = jax.lax.scan(
            step, (state.obs, state.env_state, state.running_return), keys
        )
        return state.replace(obs=obs, env_state=env_state, running_return=running), traj

    # ---------------------------------------------------------------- update
    def update(self, state: PPOState) -> tuple[PPOState, dict[str, Array]]:
        """One PPO update: rollout, GAE, critic epochs, policy epochs, mask step."""
        cfg, net = self.config, self.net
        key, k_roll, k_critic, k_policy = jax.random.split(state.key, 4)
        params_before = state.params
        state, traj = self._rollout(state, k_roll)
        L, N = traj.reward.shape

        # Values for GAE: truncations bootstrap from V(final observation).
        _, last_value = net.apply(state.params, state.obs)
        _, final_values = net.apply(state.params, _task_major(traj.final_obs))
        advantages, returns = gae(
            traj.reward,
            traj.value,
            traj.terminated,
            traj.truncated,
            final_values.reshape(N, L).T,
            last_value,
            cfg.gamma,
            cfg.gae_lambda,
        )
        task = jnp.asarray(self.batch_task_ids)
        adv = _task_major(advantages)
        if cfg.advantage_norm == "task":
            mean, std = _segment_mean_std(adv, task, self.env.num_tasks)
            adv = (adv - mean[task]) / (std[task] + 1e-8)
        elif cfg.advantage_norm == "batch":
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        batch = {
            "obs": _task_major(traj.obs),
            "action": _task_major(traj.action),
            "log_prob": _task_major(traj.log_prob),
            "advantage": adv,
            "return": _task_major(returns),
        }

        # Mask updates run on the first optimiser step of this PPO update (clock: updates done,
        # counting this one); every other optimiser step passes -1, never an update step.
        mask_clock = state.update + 1

        def apply_grads(params, opt_state, grads, first):
            mask_step = jnp.where(first, mask_clock, -1)
            updates, opt_state = self.tx.update(grads, opt_state, params, mask_step=mask_step)
            return optax.apply_updates(params, updates), opt_state

        def critic_loss(params, mb):
            _, v = net.apply(params, mb["obs"])
            return value_loss(v, mb["return"])

        def policy_loss(params, mb):
            logits, _ = net.apply(params, mb["obs"])
            log_prob, entropy = categorical_log_prob_and_entropy(logits, mb["action"])
            return ppo_policy_loss(
                log_prob,
                mb["log_prob"],
                mb["advantage"],
                entropy,
                cfg.clip_eps,
                cfg.ent_coef,
                normalize_advantages=cfg.advantage_norm == "minibatch",
            )

        num_tasks, per_task = self.env.num_tasks, self.per_task
        offsets = jnp.arange(num_tasks)[:, None, None] * per_task

        def minibatches(k, size, count):
            """``[count, T * size]`` indices: each minibatch takes ``size`` samples per task."""
            keys = jax.random.split(k, num_tasks)
            perm = jax.vmap(lambda kk: jax.random.permutation(kk, per_task))(keys)
            idx = perm[:, : size * count].reshape(num_tasks, count, size) + offsets
            return jnp.swapaxes(idx, 0, 1).reshape(count, num_tasks * size)

        def critic_epoch(carry, k):
            def mb_step(carry, idx):
                params, opt_state, first = carry
                loss, grads = jax.value_and_grad(critic_loss)(params, _take(batch, idx))
                params, opt_state = apply_grads(params, opt_state, grads, first)
                return (params, opt_state, jnp.bool_(False)), loss

            idx = minibatches(k, self.critic_mb, self.num_critic_batches)
            return jax.lax.scan(mb_step, carry, idx)

        def policy_epoch(carry, k):
            def mb_step(carry, idx):
                params, opt_state, first = carry
                (loss, aux), grads = jax.value_and_grad(policy_loss, has_aux=True)(
                    params, _take(batch, idx)
                )
                params, opt_state = apply_grads(params, opt_state, grads, first)
                return (params, opt_state, jnp.bool_(False)), {"policy_loss": loss, **aux}

            idx = minibatches(k, self.policy_mb, self.num_minibatches)
            return jax.lax.scan(mb_step, carry, idx)

        carry = (state.params, state.opt_state, jnp.bool_(True))
        carry, v_losses = jax.lax.scan(
            critic_epoch, carry, jax.random.split(k_critic, cfg.critic_epochs)
        )
        carry, p_metrics = jax.lax.scan(
            policy_epoch, carry, jax.random.split(k_policy, cfg.policy_epochs)
        )
        params, opt_state, _ = carry

        metrics = {k: v.mean() for k, v in p_metrics.items()}
        metrics["value_loss"] = v_losses.mean() if cfg.critic_epochs else jnp.float32(jnp.nan)
        metrics.update(self._episode_metrics(traj))
        metrics.update(self._sparsity_metrics(opt_state))
        finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)]
        finite += [jnp.isfinite(metrics["policy_loss"])]
        metrics["finite"] = jnp.all(jnp.stack(finite))
        metrics["param_change"] = optax.global_norm(
            jax.tree.map(lambda a, b: a - b, params, params_before)
        )
        new_state = state.replace(
            params=params, opt_state=opt_state, key=key, update=state.update + 1
        )
        return new_state, metrics

    def _episode_metrics(self, traj: Transition) -> dict[str, Array]:
        """Per-task sums over the episodes that finished during the rollout."""
        T = self.env.num_tasks
        task = jnp.asarray(self.env.task_ids)
        done = (traj.terminated | traj.truncated).astype(jnp.float32)  # [L, N]

        def per_task(x):
            return jax.ops.segment_sum(x.sum(axis=0), task, T)

        best = jnp.asarray(self.env.best_returns, jnp.float32)
        return {
            "episodes": per_task(done),
            "return_sum": per_task(traj.episode_return),
            "score_sum": per_task(traj.episode_return) / best,
            "success_sum": per_task(traj.success.astype(jnp.float32)),
        }

    def _sparsity_metrics(self, opt_state: PyTree) -> dict[str, Array]:
        masks = get_sparse_state(opt_state).masks
        active = [c for c in jax.tree.leaves(count_active(masks)) if c is not None]
        sizes = [m.size for m in jax.tree.leaves(masks) if m is not None]
        if not sizes:
            return {"sparsity": jnp.float32(0.0)}
        total = sum(sizes)
        return {"sparsity": 1.0 - jnp.sum(jnp.stack(active)).astype(jnp.float32) / total}

    # -------------------------------------------------------------- evaluate
    def evaluate(self, params: PyTree, key: Array) -> dict[str, Array]:
        """Greedy policy, one episode per evaluation environment (``eval_env``): per-task mean
        return, normalised score and success. Runs until every environment has finished once."""
        env, net = self.eval_env, self.net
        T = env.num_tasks
        k_reset, k_steps = jax.random.split(key)
        obs, env_state = env.reset(k_reset)
        n = env.num_envs
        zeros = jnp.zeros(n, jnp.float32)
        init = (obs, env_state, zeros, zeros, jnp.zeros(n, bool), jnp.zeros(n, bool), 0)

        def cond(carry):
            *_, finished, _, t = carry
            return (t < env.max_episode_steps) & ~jnp.all(finished)

        def body(carry):
            obs, env_state, running, final, finished, success, t = carry
            logits, _ = net.apply(params, obs)
            out = env.step(jax.random.fold_in(k_steps, t), env_state, jnp.argmax(logits, -1))
            ret = running + out.reward
            done = (out.terminated | out.truncated) & ~finished
            final = jnp.where(done, ret, final)
            success = success | (done & out.success)
            return (out.obs, out.state, ret, final, finished | done, success, t + 1)

        *_, final, _, success, _ = jax.lax.while_loop(cond, body, init)
        task = jnp.asarray(env.task_ids)
        count = jax.ops.segment_sum(jnp.ones(n), task, T)
        mean_return = jax.ops.segment_sum(final, task, T) / count
        return {
            "return": mean_return,
            "score": mean_return / jnp.asarray(env.best_returns, jnp.float32),
            "success": jax.ops.segment_sum(success.astype(jnp.float32), task, T) / count,
        }
