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

import math
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
from jaxsparse.nets.multitask import SINGLE_TASK, flatten_intermediates
from jaxsparse.plasticity.interventions import (
    PlasticityConfig,
    is_output_layer,
    recycle_dormant,
    reset_layers,
    zero_adam_moments,
)
from jaxsparse.plasticity.metrics import effective_rank, per_sample_fisher
from jaxsparse.plasticity.neurons import (
    all_scores,
    dormant_summary,
    minigrid_neuron_layers,
    policy_leaves,
)
from jaxsparse.plasticity.surgery import cagrad, pcgrad
from jaxsparse.sparsity import apply_masks, count_active, sparsify
from jaxsparse.sparsity.checks import check_int, check_range
from jaxsparse.sparsity.control import cond_any
from jaxsparse.sparsity.masks import FilterFn, default_filter, leaf_paths, tree_map_masked
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
    surgery: str = "none"  # per-task gradient surgery: "none", "pcgrad" or "cagrad"
    cagrad_c: float = 0.5

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
        if self.surgery not in ("none", "pcgrad", "cagrad"):
            raise ValueError(
                f"surgery must be one of ['none', 'pcgrad', 'cagrad'], got {self.surgery!r}"
            )
        check_range("cagrad_c", self.cagrad_c, 0.0, np.inf)


class PPOState(struct.PyTreeNode):
    """Everything one seed's training carries between updates (checkpointed as is)."""

    params: PyTree
    opt_state: PyTree
    env_state: PyTree
    obs: PyTree
    running_return: Array  # [N] return of each environment's current episode
    key: Array
    update: Array  # int32, PPO updates done
    # Task-major batch of recent observations (diagnostics, ReDo); None when neither is on.
    recent_obs: PyTree = None


class Transition(NamedTuple):
    obs: PyTree
    action: Array
    log_prob: Array
    value: Array
    reward: Array
    terminated: Array
    truncated: Array
    # V(final observation) where the episode was truncated (the GAE bootstrap), else 0.
    bootstrap_value: Array
    episode_return: Array  # return of the episode that ended at this step, else 0
    success: Array


def _segment_mean_std(x: Array, task: Array, num_tasks: int) -> tuple[Array, Array]:
    count = jax.ops.segment_sum(jnp.ones_like(x), task, num_tasks)
    mean = jax.ops.segment_sum(x, task, num_tasks) / jnp.maximum(count, 1.0)
    var = jax.ops.segment_sum(jnp.square(x - mean[task]), task, num_tasks) / jnp.maximum(count, 1.0)
    return mean, jnp.sqrt(var)


def strong_types(tree: PyTree) -> PyTree:
    """The same arrays without weak types. An environment state that comes out of ``reset`` with
    weakly typed leaves (gymnax CartPole's ``time``, Pendulum's ``last_u``) and out of a step
    strongly typed would make the second call of a jitted update or chunk compile again."""
    return jax.tree.map(lambda x: jax.lax.convert_element_type(x, jnp.asarray(x).dtype), tree)


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
        plasticity: PlasticityConfig | None = None,
    ) -> None:
        self.config = config
        self.plasticity = plasticity if plasticity is not None else PlasticityConfig()
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
        self.tx = self._make_tx(0)
        self._setup_plasticity()

    def _make_tx(self, key: Array | int) -> optax.GradientTransformationExtraArgs:
        """The optimiser: [per-task gradient surgery ->] sparsify(clip -> Adam)."""
        cfg = self.config
        tx = sparsify(self.inner, self.plan, key=key, filter_fn=self.filter_fn)
        if cfg.surgery == "none":
            return tx
        surgery = pcgrad(seed=key) if cfg.surgery == "pcgrad" else cagrad(c=cfg.cagrad_c)
        return optax.chain(surgery, tx)

    def _setup_plasticity(self) -> None:
        """Neuron graph, recent-batch size and checks for diagnostics and interventions."""
        pl, T = self.plasticity, self.env.num_tasks
        self.layers: tuple = ()
        # ceil(batch / T) samples per task (1026 for 1024 on MT3), at most one rollout's.
        self.recent_per_task = min(math.ceil(pl.batch / T), self.per_task)
        if not (pl.needs_batch or pl.reset_every):
            return
        obs = jax.eval_shape(self.env.reset, jax.random.PRNGKey(0))[0]
        shapes = jax.eval_shape(self.net.init, jax.random.PRNGKey(0), obs)
        if pl.reset_every and not any(is_output_layer(p) for p in leaf_paths(shapes)):
            raise ValueError("plasticity.reset_every needs actor/critic Dense_1 output layers")
        if pl.needs_batch:
            self.layers = minigrid_neuron_layers(shapes)

    # ------------------------------------------------------------------ init
    def init(self, key: Array) -> PPOState:
        k_env, k_net, k_mask, k_run = jax.random.split(key, 4)
        obs, env_state = self.env.reset(k_env)
        params = self.net.init(k_net, obs)
        opt_state = self._make_tx(k_mask).init(params)
        params = apply_masks(params, get_sparse_state(opt_state).masks)
        recent = None
        if self.plasticity.needs_batch:
            # Placeholder until the first rollout: rows of the initial observation, task-major.
            per_env = self.env.num_envs // self.env.num_tasks
            n = self.recent_per_task
            idx = np.concatenate(
                [t * per_env + np.arange(n) % per_env for t in range(self.env.num_tasks)]
            )
            recent = _take(obs, jnp.asarray(idx))
        return PPOState(
            params=params,
            opt_state=opt_state,
            env_state=strong_types(env_state),
            obs=obs,
            running_return=jnp.zeros(self.env.num_envs, jnp.float32),
            key=k_run,
            update=jnp.zeros([], jnp.int32),
            recent_obs=recent,
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
            # The value of a truncated episode's last observation, computed here only at steps
            # where some env was truncated (cond_any: one real branch, also under vmap), instead
            # of a forward pass over every stored final observation after the rollout.
            bootstrap = cond_any(
                jnp.any(out.truncated),
                # Operands passed in, not closed over: cond_any's vmap rule needs them explicit.
                lambda ops: jnp.where(ops[1], net.apply(ops[0], ops[2])[1], 0.0),
                lambda ops: jnp.zeros_like(ops[3]),
                (state.params, out.truncated, out.final_obs, value),
            )
            tr = Transition(
                obs=obs,
                action=action,
                log_prob=log_prob,
                value=value,
                reward=out.reward,
                terminated=out.terminated,
                truncated=out.truncated,
                bootstrap_value=bootstrap,
                episode_return=jnp.where(done, ret, 0.0),
                success=out.success & done,
            )
            return (out.obs, out.state, jnp.where(done, 0.0, ret)), tr

        keys = jax.random.split(key, self.config.rollout_length)
        (obs, env_state, running), traj = jax.lax.scan(
            step, (state.obs, state.env_state, state.running_return), keys
        )
        return state.replace(obs=obs, env_state=env_state, running_return=running), traj

    def _advantages(self, state: PPOState, traj: Transition) -> tuple[Array, Array]:
        """GAE advantages and returns of a rollout (``state``: the state after it); V(last
        observation) for the last step, truncations bootstrap from the rollout's values."""
        _, last_value = self.net.apply(state.params, state.obs)
        cfg = self.config
        return gae(
            traj.reward,
            traj.value,
            traj.terminated,
            traj.truncated,
            traj.bootstrap_value,
            last_value,
            cfg.gamma,
            cfg.gae_lambda,
        )

    # ---------------------------------------------------------------- update
    def update(self, state: PPOState) -> tuple[PPOState, dict[str, Array]]:
        """One PPO update: rollout, GAE, critic epochs, policy epochs, mask step."""
        cfg, net = self.config, self.net
        key, k_roll, k_critic, k_policy = jax.random.split(state.key, 4)
        params_before = state.params
        state, traj = self._rollout(state, k_roll)
        advantages, returns = self._advantages(state, traj)
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

        # With gradient surgery each task's loss is differentiated on its own block of the
        # minibatch: one task per block, so each head runs that task's kernel only.
        apply_kw = {} if cfg.surgery == "none" else {"task_major": SINGLE_TASK}

        def critic_loss(params, mb):
            _, v = net.apply(params, mb["obs"], **apply_kw)
            return value_loss(v, mb["return"])

        def policy_loss(params, mb):
            logits, _ = net.apply(params, mb["obs"], **apply_kw)
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
                loss, grads = self._value_and_grad(
                    critic_loss, params, opt_state, _take(batch, idx), False
                )
                params, opt_state = apply_grads(params, opt_state, grads, first)
                return (params, opt_state, jnp.bool_(False)), loss

            idx = minibatches(k, self.critic_mb, self.num_critic_batches)
            return jax.lax.scan(mb_step, carry, idx)

        def policy_epoch(carry, k):
            def mb_step(carry, idx):
                params, opt_state, first = carry
                (loss, aux), grads = self._value_and_grad(
                    policy_loss, params, opt_state, _take(batch, idx), True
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
        recent = state.recent_obs
        if self.plasticity.needs_batch:
            recent = self._recent_batch(batch["obs"], jax.random.fold_in(state.key, 0xD1A6))
        params, opt_state, extra = self._interventions(
            params, opt_state, recent, state.obs, state.update + 1, state.key
        )

        metrics = {k: v.mean() for k, v in p_metrics.items()}
        metrics.update(extra)
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
            params=params, opt_state=opt_state, key=key, update=state.update + 1, recent_obs=recent
        )
        return new_state, metrics

    # ------------------------------------------------- surgery, plasticity
    def _value_and_grad(self, loss_fn, params, opt_state, mb, has_aux):
        """``value_and_grad`` of the minibatch loss; with gradient surgery, per-task gradients
        (leading task axis, pruned entries zeroed so that only live weights count in the
        surgery's dot products) and the task-mean loss / metrics."""
        if self.config.surgery == "none":
            return jax.value_and_grad(loss_fn, has_aux=has_aux)(params, mb)
        T = self.env.num_tasks
        blocks = jax.tree.map(lambda x: x.reshape(T, -1, *x.shape[1:]), mb)
        out, grads = jax.vmap(jax.value_and_grad(loss_fn, has_aux=has_aux), in_axes=(None, 0))(
            params, blocks
        )
        masks = get_sparse_state(opt_state).masks
        grads = tree_map_masked(lambda m, g: jnp.where(m, g, jnp.zeros_like(g)), masks, grads)
        return jax.tree.map(lambda x: x.mean(axis=0), out), grads

    def _recent_batch(self, obs: PyTree, key: Array) -> PyTree:
        """``recent_per_task`` random samples of each task from this rollout, task-major."""
        T, n = self.env.num_tasks, self.recent_per_task
        perm = jax.vmap(lambda k: jax.random.permutation(k, self.per_task)[:n])(
            jax.random.split(key, T)
        )
        idx = (perm + jnp.arange(T)[:, None] * self.per_task).reshape(-1)
        return _take(obs, idx)

    def _interventions(self, params, opt_state, recent, obs, clock, key):
        """ReDo and Reset after the epochs of update number ``clock`` (1-based); both branch
        with ``cond_any`` so that between interventions nothing extra runs."""
        pl, extra = self.plasticity, {}
        if pl.redo_every:

            def redo(ops):
                params, opt_state, recent, k = ops
                masks = get_sparse_state(opt_state).masks
                _, inter = self.net.apply(params, recent, mutable=["intermediates"])
                scores = all_scores(flatten_intermediates(inter), self.layers, self.env.num_tasks)
                fresh = self.net.init(k, recent)
                params, touched, n = recycle_dormant(
                    params, fresh, scores, self.layers, pl.redo_tau, masks
                )
                return params, zero_adam_moments(opt_state, touched), n

            ops = (params, opt_state, recent, jax.random.fold_in(key, 0x4ED0))
            params, opt_state, extra["recycled"] = cond_any(
                clock % pl.redo_every == 0,
                redo,
                lambda ops: (ops[0], ops[1], jnp.int32(0)),
                ops,
            )
        if pl.reset_every:

            def reset(ops):
                params, opt_state, obs, k = ops
                masks = get_sparse_state(opt_state).masks
                fresh = self.net.init(k, obs)
                params, touched = reset_layers(params, fresh, is_output_layer, masks)
                return params, zero_adam_moments(opt_state, touched)

            do = (clock % pl.reset_every == 0) & (clock // pl.reset_every <= pl.reset_max)
            ops = (params, opt_state, obs, jax.random.fold_in(key, 0x4E5E))
            params, opt_state = cond_any(do, reset, lambda ops: (ops[0], ops[1]), ops)
            extra["reset"] = do.astype(jnp.float32)
        return params, opt_state, extra

    def diagnose(self, state: PPOState, key: Array) -> dict[str, Array]:
        """Plasticity diagnostics on ``state.recent_obs``: tau-dormant fractions (actor, critic,
        per layer), srank of the shared features, and the policy's Fisher trace with actions
        sampled on-policy (per-sample squared gradient norms over live weights)."""
        if not self.plasticity.diagnostics:
            raise ValueError("diagnose needs PlasticityConfig(diagnostics=True)")
        pl, net, params, obs = self.plasticity, self.net, state.params, state.recent_obs
        masks = get_sparse_state(state.opt_state).masks
        (logits, _), inter = net.apply(params, obs, mutable=["intermediates"])
        acts = flatten_intermediates(inter)
        out = dormant_summary(
            all_scores(acts, self.layers, self.env.num_tasks), self.layers, pl.tau, masks
        )
        out["erank"] = effective_rank(acts["features"])
        actions = jax.random.categorical(key, logits)
        # The policy's Fisher: gradients w.r.t. the parameters the logits depend on (the critic's
        # are exactly zero; leaving them out saves their per-sample gradients).
        keep = policy_leaves(params)
        policy = jax.tree.map(lambda x, k: x if k else None, params, keep)
        fixed = jax.tree.map(lambda x, k: None if k else x, params, keep)
        policy_masks = jax.tree.map(
            lambda m, k: m if k else None, masks, keep, is_leaf=lambda x: x is None
        )

        def log_prob(p, o, a):
            full = jax.tree.map(
                lambda x, y: y if x is None else x, p, fixed, is_leaf=lambda x: x is None
            )
            lg, _ = net.apply(full, jax.tree.map(lambda x: x[None], o), task_major=SINGLE_TASK)
            return categorical_log_prob_and_entropy(lg, a[None])[0][0]

        out["fisher_trace"] = jnp.mean(
            per_sample_fisher(
                log_prob, policy, obs, actions, policy_masks, batch_size=pl.fisher_chunk
            )
        )
        return out

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
