"""Multi-task SAC (multi-head, per-task temperature) as pure functions: ``init(key)``,
``update(state)`` and ``evaluate(params, key)`` for one seed; ``vmap`` them over seeds.

Loop. One ``update`` runs ``steps_per_update`` iterations (``lax.scan``) of: one environment step
of every environment of the suite (the policy's sampled action, or a uniform random action in
``[-1, 1]`` while fewer than ``warmup_steps`` suite steps are done), its transitions written to
the per-task replay buffer (``jaxsparse.algos.replay``), then one gradient step once the warm-up
is over (suite step ``warmup_steps + 1`` on; none during the warm-up, as mtrl's MT-SAC and
CleanRL: its ``lax.cond`` stays a branch under ``vmap``, see ``cond_any``). So a suite step is
one gradient step, as in MT10's protocol (SPEC: 20M environment steps = 2M suite steps of one
environment per task, 2M gradient steps, batch 1280 = 128 per task).

Gradient step (mtrl's order): sample ``batch_size / T`` transitions of every task (task-major
equal blocks, so heads run one matmul per task); critic update on the soft Bellman target
``y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha_task log pi(a'|s'))`` with
``a' ~ pi(s')`` and Q' the target critics (loss: MSE of both critics, summed); then the actor on
``mean(alpha_task log pi(a|s) - min_i Q_i(s, a))`` with the freshly updated critics; then each
task's temperature on ``mean(alpha_task (-log pi(a|s) - target_entropy))`` (mtrl; log-alpha is
the parameter, ``target_entropy = -action_dim`` by default); finally the target critics move by
Polyak averaging ``(1 - tau) target + tau critic``. Truncated episodes (time limits) bootstrap:
the buffer stores the real last observation (``final_obs``) and only ``terminated`` cuts the
target.

Sparsity. Three optimisers (clip by global norm -> Adam): actor, critic, temperatures. The
actor's and the critic's are each wrapped by ``sparsify`` with the part of ``plan`` that names
their module (``split_plan``): ``{"actor": GMP(...)}`` prunes the actor only, a single method or
``"*"`` applies to both (each network's own global target). Each optimiser sees its parameters
as ``{"actor": ...}`` / ``{"critic": ...}``, so plan keys are full paths
(``"critic/critic_0/head"``). The target critics carry the critic's masks: after every Polyak
step they are multiplied by the critic's current masks, so a pruned critic weight is exactly zero
in the target too. Mask clock: ``mask_step`` is the number of gradient steps done counting the
current one (1-based), i.e. suite steps minus the warm-up; schedules given in environment steps
of the suite convert with ``step - warmup_steps``.

Environment (duck-typed, ``jaxsparse.algos.sac_envs`` adapts continuous gymnax envs):
``num_envs``, ``num_tasks``, ``task_ids`` (int ``[N]``, task-major equal blocks),
``action_dim``, ``max_episode_steps``; ``reset(key) -> (obs [N, obs_dim], state)``;
``step(key, state, actions [N, action_dim] in [-1, 1]) -> EnvStep`` (``jaxsparse.algos.ppo``).
An episode counts as a success if ``success`` held at any of its steps (Meta-World's convention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxsparse.algos.maskgen import MaskGen, MaskGenConfig
from jaxsparse.algos.ppo import EnvStep, strong_types
from jaxsparse.algos.replay import ReplayState, replay_add, replay_init, replay_sample
from jaxsparse.nets.multitask import flatten_intermediates
from jaxsparse.nets.sac import (
    HIDDEN,
    MOORE_EXPERTS,
    SAC_ARCHS,
    SOFTMOD_MT10,
    SACNetworks,
    SoftModSpec,
    deterministic_action,
    tanh_gaussian_sample,
)
from jaxsparse.plasticity.interventions import PlasticityConfig
from jaxsparse.plasticity.metrics import dormant_fraction, effective_rank, per_sample_fisher
from jaxsparse.sparsity import apply_masks, count_active, sparsify
from jaxsparse.sparsity.checks import check_choice, check_int, check_range
from jaxsparse.sparsity.control import cond_any
from jaxsparse.sparsity.masks import FilterFn, default_filter
from jaxsparse.sparsity.methods import SparseMethod
from jaxsparse.sparsity.plan import Plan
from jaxsparse.sparsity.transform import get_sparse_state

Array = jax.Array
PyTree = Any
NETWORKS = ("actor", "critic")


class SACEnv(Protocol):
    num_envs: int
    num_tasks: int
    task_ids: np.ndarray
    action_dim: int
    max_episode_steps: int

    def reset(self, key: Array) -> tuple[Array, PyTree]: ...
    def step(self, key: Array, state: PyTree, actions: Array) -> EnvStep: ...


@dataclass(frozen=True)
class SACConfig:
    """SAC settings; the defaults are the MT10 protocol of SPEC.md (multi-head SAC)."""

    steps_per_update: int = 500  # suite steps (and gradient steps) per ``update`` call
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0  # every task's initial temperature
    target_entropy: float | None = None  # None: -action_dim
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    adam_eps: float = 1e-8
    max_grad_norm: float | None = 1.0  # global norm, per optimiser
    batch_size: int = 1280  # in total, split evenly over tasks (MT10: 128 per task)
    buffer_size: int = 1_000_000  # in total, split evenly over tasks
    # suite steps of uniform random actions, no gradient steps (MT10: 40k environment steps)
    warmup_steps: int = 4_000
    actor_hidden: tuple[int, ...] = HIDDEN
    critic_hidden: tuple[int, ...] = HIDDEN
    # the networks (jaxsparse.nets.sac.SACNetworks): mtmhsac, mooresac (n_experts), softmod
    arch: str = "mtmhsac"
    n_experts: int = MOORE_EXPERTS
    softmod: SoftModSpec = SOFTMOD_MT10

    def __post_init__(self) -> None:
        for name in ("steps_per_update", "batch_size", "buffer_size"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("warmup_steps", self.warmup_steps, minimum=0)
        check_choice("arch", self.arch, SAC_ARCHS)
        check_int("n_experts", self.n_experts, minimum=1)
        check_range("gamma", self.gamma, 0.0, 1.0)
        check_range("tau", self.tau, 0.0, 1.0)
        check_range("init_alpha", self.init_alpha, 0.0, np.inf, low_open=True)
        for name in ("actor_lr", "critic_lr", "alpha_lr", "adam_eps"):
            check_range(name, getattr(self, name), 0.0, np.inf, low_open=True)
        if self.target_entropy is not None:
            check_range("target_entropy", self.target_entropy, -np.inf, np.inf)
        if self.max_grad_norm is not None:
            check_range("max_grad_norm", self.max_grad_norm, 0.0, np.inf, low_open=True)
        for name in ("actor_hidden", "critic_hidden"):
            widths = tuple(getattr(self, name))
            if not widths:
                raise ValueError(f"{name} must name at least one hidden layer width")
            for w in widths:
                check_int(f"{name} width", w, minimum=1)
            object.__setattr__(self, name, widths)


class SACState(struct.PyTreeNode):
    """Everything one seed's training carries between updates (checkpointed as is)."""

    params: PyTree  # {"actor": ..., "critic": ..., "log_alpha": [T]}
    target_critic: PyTree  # Polyak average of params["critic"], with the critic's masks
    opt_state: PyTree  # {"actor": ..., "critic": ..., "alpha": ...}
    buffer: ReplayState
    env_state: PyTree
    obs: Array  # [N, obs_dim]
    running_return: Array  # [N] return of each environment's current episode
    running_success: Array  # [N] bool, success at some step of the current episode
    key: Array
    env_steps: Array  # int32, suite steps done
    grad_steps: Array  # int32, gradient steps done (the mask clock)


def split_plan(plan: Plan | None) -> dict[str, dict[str, SparseMethod]]:
    """The plan entries of each network (``actor``, ``critic``).

    A single method, ``"*"`` or ``""`` goes to both networks; any other key must start with
    ``actor`` or ``critic`` (a full parameter path such as ``"critic/critic_1/head"``).
    """
    out: dict[str, dict[str, SparseMethod]] = {name: {} for name in NETWORKS}
    if plan is None:
        return out
    if isinstance(plan, SparseMethod):
        return {name: {"": plan} for name in NETWORKS}
    if not isinstance(plan, Mapping):
        raise TypeError(
            f"plan must be a SparseMethod or a mapping of module -> method, got {plan!r}"
        )
    for key, method in plan.items():
        if not isinstance(method, SparseMethod):
            raise TypeError(f"plan[{key!r}] must be a SparseMethod, got {method!r}")
        k = "" if key == "*" else key.strip("/")
        if k == "":
            for name in NETWORKS:
                out[name][""] = method
            continue
        owner = k.split("/", 1)[0]
        if owner not in NETWORKS:
            raise ValueError(f"SAC plan key {key!r} must be '*' or start with one of {NETWORKS}")
        out[owner][k] = method
    return out


# ------------------------------------------------------------------ losses (pure formulas)
def critic_target(
    reward: Array,
    terminated: Array,
    next_q: Array,
    next_log_prob: Array,
    alpha: Array,
    gamma: float,
) -> Array:
    """Soft Bellman target ``r + gamma (1 - terminated) (min(Q'_1, Q'_2) - alpha log pi')``;
    ``next_q [B, 2]``, everything else ``[B]`` (``alpha`` is each sample's task temperature)."""
    soft_value = jnp.min(next_q, axis=-1) - alpha * next_log_prob
    return reward + gamma * (1.0 - terminated.astype(jnp.float32)) * soft_value


def critic_loss(q: Array, target: Array) -> Array:
    """``MSE(Q_1, y) + MSE(Q_2, y)`` for ``q [B, 2]`` and ``target [B]``."""
    return jnp.mean(jnp.sum(jnp.square(q - target[:, None]), axis=-1))


def actor_loss(q: Array, log_prob: Array, alpha: Array) -> Array:
    """``mean(alpha log pi(a|s) - min(Q_1, Q_2)(s, a))``."""
    return jnp.mean(alpha * log_prob - jnp.min(q, axis=-1))


def alpha_loss(log_alpha: Array, log_prob: Array, task: Array, target_entropy: float) -> Array:
    """``mean(alpha_task (-log pi - target_entropy))``, gradient to ``log_alpha [T]`` only."""
    entropy_gap = jax.lax.stop_gradient(-log_prob - target_entropy)
    return jnp.mean(jnp.exp(log_alpha)[task] * entropy_gap)


def polyak(target: PyTree, online: PyTree, tau: float) -> PyTree:
    """``(1 - tau) target + tau online``, leaf by leaf."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def _mask_sparsity(masks: PyTree) -> tuple[Array, Array]:
    """(active, total) over the masked leaves (0, 0 when none)."""
    active = [c for c in jax.tree.leaves(count_active(masks)) if c is not None]
    total = sum(m.size for m in jax.tree.leaves(masks) if m is not None)
    if not total:
        return jnp.int32(0), jnp.int32(0)
    return jnp.sum(jnp.stack(active)), jnp.int32(total)


def _fraction_pruned(active: Array, total: Array) -> Array:
    pruned = (total - active).astype(jnp.float32)
    return jnp.where(total > 0, pruned / jnp.maximum(total, 1).astype(jnp.float32), 0.0)


class SAC:
    """Pure ``init`` / ``update`` / ``evaluate`` for one seed; ``vmap`` them over seeds."""

    def __init__(
        self,
        config: SACConfig,
        env: SACEnv,
        plan: Plan | None = None,
        eval_env: SACEnv | None = None,
        filter_fn: FilterFn = default_filter,
        plasticity: PlasticityConfig | None = None,
        maskgen: MaskGenConfig | None = None,
    ) -> None:
        self.plasticity = plasticity if plasticity is not None else PlasticityConfig()
        if self.plasticity.redo_every or self.plasticity.reset_every:
            raise ValueError(
                "SAC runs the plasticity diagnostics only: redo_every and reset_every must be 0"
            )
        self.config = config
        self.env = env
        self.eval_env = eval_env if eval_env is not None else env
        T, N = env.num_tasks, env.num_envs
        for e in {id(env): env, id(self.eval_env): self.eval_env}.values():
            if e.num_envs % e.num_tasks or e.num_tasks != T:
                raise ValueError(
                    f"environments must have {T} tasks in equal task-major blocks, got "
                    f"num_envs={e.num_envs}, num_tasks={e.num_tasks}"
                )
        if config.batch_size % T:
            raise ValueError(f"batch_size ({config.batch_size}) must split evenly over {T} tasks")
        self.batch_per_task = config.batch_size // T
        self.capacity_per_task = config.buffer_size // T
        if self.capacity_per_task < N // T:
            raise ValueError(
                f"buffer_size ({config.buffer_size}) must hold at least one step of every "
                f"environment ({N})"
            )
        self.action_dim = env.action_dim
        self.target_entropy = (
            -float(env.action_dim) if config.target_entropy is None else config.target_entropy
        )
        # Our Meta-World suites append the one-hot task id to the observation
        # (``append_task_id``); the architectures that take the task separately drop it.
        task_dims = T if getattr(env, "append_task_id", False) else 0
        self.net = SACNetworks(
            T,
            env.action_dim,
            config.actor_hidden,
            config.critic_hidden,
            arch=config.arch,
            n_experts=config.n_experts,
            softmod=config.softmod,
            obs_task_dims=task_dims,
        )
        self.maskgen: MaskGen | None = None
        if maskgen is not None:
            if config.arch != "mtmhsac":
                raise ValueError(
                    f"the mask generator masks the neurons of arch 'mtmhsac', got {config.arch!r}"
                )
            if config.warmup_steps < maskgen.segment_length:
                raise ValueError(
                    f"warmup_steps ({config.warmup_steps}) must be at least "
                    f"maskgen.segment_length ({maskgen.segment_length}): the first similarity "
                    "phase cuts segments of that many steps from the buffer"
                )
            self.maskgen = MaskGen(
                maskgen,
                T,
                config.actor_hidden,
                config.critic_hidden,
                int(env.obs_dim),
                env.action_dim,
                task_dims=T if getattr(env, "append_task_id", False) else 0,
                max_grad_norm=config.max_grad_norm,
            )
        self.plan = plan
        self.plans = split_plan(plan)
        self.filter_fn = filter_fn
        self.inner = {
            "actor": self._adam(config.actor_lr),
            "critic": self._adam(config.critic_lr),
        }
        self.alpha_tx = self._adam(config.alpha_lr)
        # ``update`` reads the mask PRNG key from the optimiser state, so one transform per
        # network serves every seed; ``init`` builds its own with the seed's key.
        self.tx = {name: self._make_tx(name, 0) for name in NETWORKS}

    def _adam(self, lr: float) -> optax.GradientTransformation:
        adam = optax.adam(lr, eps=self.config.adam_eps)
        if self.config.max_grad_norm is None:
            return adam
        return optax.chain(optax.clip_by_global_norm(self.config.max_grad_norm), adam)

    def _make_tx(self, name: str, key: Array | int) -> optax.GradientTransformationExtraArgs:
        return sparsify(self.inner[name], self.plans[name], key=key, filter_fn=self.filter_fn)

    # ------------------------------------------------------------------ init
    def init(self, key: Array) -> SACState:
        env, cfg = self.env, self.config
        k_env, k_net, k_mask, k_run = jax.random.split(key, 4)
        obs, env_state = strong_types(env.reset(k_env))
        nets = self.net.init(k_net, obs, jnp.asarray(env.task_ids))
        params, opt_state = {}, {}
        for i, name in enumerate(NETWORKS):
            sub = {name: nets[name]}
            opt_state[name] = self._make_tx(name, jax.random.fold_in(k_mask, i)).init(sub)
            params[name] = apply_masks(sub, get_sparse_state(opt_state[name]).masks)[name]
        params["log_alpha"] = jnp.full(env.num_tasks, math.log(cfg.init_alpha), jnp.float32)
        opt_state["alpha"] = self.alpha_tx.init(params["log_alpha"])
        if self.maskgen is not None:
            gen_params, gen_opt = self.maskgen.init(jax.random.fold_in(k_net, 7))
            params.update(gen_params)
            opt_state.update(gen_opt)
        obs_dim = obs.shape[1:]
        example = {
            "obs": jax.ShapeDtypeStruct(obs_dim, jnp.float32),
            "action": jax.ShapeDtypeStruct((self.action_dim,), jnp.float32),
            "reward": jax.ShapeDtypeStruct((), jnp.float32),
            "next_obs": jax.ShapeDtypeStruct(obs_dim, jnp.float32),
            "terminated": jax.ShapeDtypeStruct((), jnp.bool_),
        }
        n = env.num_envs
        return SACState(
            params=params,
            target_critic=params["critic"],
            opt_state=opt_state,
            buffer=replay_init(example, env.num_tasks, self.capacity_per_task),
            env_state=env_state,
            obs=obs.astype(jnp.float32),
            running_return=jnp.zeros(n, jnp.float32),
            running_success=jnp.zeros(n, bool),
            key=k_run,
            env_steps=jnp.zeros([], jnp.int32),
            grad_steps=jnp.zeros([], jnp.int32),
        )

    # ---------------------------------------------------------------- losses
    def _tasks(self, batch_size: int) -> Array:
        """Task ids of a task-major batch of T equal blocks."""
        T = self.env.num_tasks
        if batch_size % T:
            raise ValueError(f"a batch of {batch_size} does not split into {T} equal task blocks")
        return jnp.repeat(jnp.arange(T, dtype=jnp.int32), batch_size // T)

    def _masks(
        self, gen: PyTree | None, name: str, obs: Array, task: Array, key: Array | None
    ) -> Any:
        """Neuron masks of network ``name`` (None without the mask generator); ``key`` None:
        the deterministic evaluation masks."""
        if self.maskgen is None or gen is None:
            return None
        return self.maskgen.masks(gen, name, obs, task, key)

    def _policy_sample(
        self,
        actor_params: PyTree,
        gen: PyTree | None,
        obs: Array,
        task: Array,
        noise: Array,
        key: Array | None,
    ) -> tuple[Array, Array]:
        """``tanh_gaussian_sample`` of the actor at ``obs`` (task-major), through the actor's
        neuron masks when there is a mask generator (``key``: their Gumbel noise)."""
        masks = self._masks(gen, "actor", obs, task, key)
        mean, log_std = self.net.actor(actor_params, obs, task, task_major=True, masks=masks)
        return tanh_gaussian_sample(mean, log_std, noise)

    def critic_loss(
        self,
        critic_params: PyTree,
        actor_params: PyTree,
        target_critic: PyTree,
        log_alpha: Array,
        batch: dict[str, Array],
        noise: Array,
        gen: PyTree | None = None,
        key: Array | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        """Twin-critic loss on a task-major batch (T equal blocks); ``noise [B, A]`` draws the
        next actions. Returns (loss, {"q": [B, 2], "target": [B]}). With the mask generator,
        ``gen`` (its parameters; the gradient reaches ``gen["critic"]`` through the online
        critics' masks) and ``key`` (Gumbel noise of the masks)."""
        net, task = self.net, self._tasks(batch["reward"].shape[0])
        k_next_a, k_next_c, k_q = (None,) * 3 if key is None else jax.random.split(key, 3)
        sg_gen = jax.lax.stop_gradient(gen)
        next_obs = batch["next_obs"]
        next_action, next_log_prob = self._policy_sample(
            actor_params, sg_gen, next_obs, task, noise, k_next_a
        )
        next_q = net.critic(
            target_critic,
            next_obs,
            next_action,
            task,
            task_major=True,
            masks=self._masks(sg_gen, "critic", next_obs, task, k_next_c),
        )
        alpha = jnp.exp(log_alpha)[task]
        target = jax.lax.stop_gradient(
            critic_target(
                batch["reward"],
                batch["terminated"],
                next_q,
                next_log_prob,
                alpha,
                self.config.gamma,
            )
        )
        masks = self._masks(gen, "critic", batch["obs"], task, k_q)
        q = net.critic(
            critic_params, batch["obs"], batch["action"], task, task_major=True, masks=masks
        )
        aux = {"q": q, "target": target}
        if masks is not None:  # the actor's loss reuses them (``gradient_step``)
            aux["critic_masks"] = masks
        return critic_loss(q, target), aux

    def actor_loss(
        self,
        actor_params: PyTree,
        critic_params: PyTree,
        log_alpha: Array,
        batch: dict[str, Array],
        noise: Array,
        gen: PyTree | None = None,
        key: Array | None = None,
        critic_masks: Any = None,
    ) -> tuple[Array, dict[str, Array]]:
        """Actor loss (gradient to the actor only, and with the mask generator to
        ``gen["actor"]`` through the actor's masks); returns (loss, {"log_prob": [B]}).
        ``critic_masks``: the critics' masks on these states (the critic loss's, held fixed);
        None: drawn here."""
        net, task = self.net, self._tasks(batch["reward"].shape[0])
        k_a, k_c = (None, None) if key is None else jax.random.split(key)
        obs = batch["obs"]
        action, log_prob = self._policy_sample(actor_params, gen, obs, task, noise, k_a)
        c_masks = critic_masks
        if c_masks is None:
            c_masks = self._masks(jax.lax.stop_gradient(gen), "critic", obs, task, k_c)
        c_masks = jax.lax.stop_gradient(c_masks)
        q = net.critic(jax.lax.stop_gradient(critic_params), obs, action, task, True, masks=c_masks)
        alpha = jax.lax.stop_gradient(jnp.exp(log_alpha))[task]
        return actor_loss(q, log_prob, alpha), {"log_prob": log_prob}

    def alpha_loss(self, log_alpha: Array, log_prob: Array) -> Array:
        return alpha_loss(log_alpha, log_prob, self._tasks(log_prob.shape[0]), self.target_entropy)

    # ---------------------------------------------------------- gradient step
    def _apply(self, name: str, grads, opt_state, params, clock) -> tuple[PyTree, PyTree]:
        sub = {name: params}
        updates, opt_state = self.tx[name].update({name: grads}, opt_state, sub, mask_step=clock)
        return optax.apply_updates(sub, updates)[name], opt_state

    def gradient_step(
        self,
        params: PyTree,
        target_critic: PyTree,
        opt_state: PyTree,
        batch: dict[str, Array],
        grad_steps: Array,
        key: Array,
    ) -> tuple[PyTree, PyTree, PyTree, dict[str, Array]]:
        """Critic, actor, temperatures, then the target (Polyak, re-masked), on ``batch``.

        The mask clock of this step is ``grad_steps + 1``.
        """
        cfg, T = self.config, self.env.num_tasks
        clock = grad_steps + 1
        k_next, k_pi = jax.random.split(key)
        shape = (batch["reward"].shape[0], self.action_dim)
        log_alpha = params["log_alpha"]

        # The mask generator (if any): its parameters get the gradients of both losses.
        gen = params.get("mask_gen")
        k_cmask, k_amask = jax.random.fold_in(key, 2), jax.random.fold_in(key, 3)
        (c_loss, c_aux), c_grads = jax.value_and_grad(
            self.critic_loss, argnums=0 if gen is None else (0, 6), has_aux=True
        )(
            params["critic"],
            params["actor"],
            target_critic,
            log_alpha,
            batch,
            jax.random.normal(k_next, shape),
            gen,
            None if gen is None else k_cmask,
        )
        if gen is not None:
            c_grads, c_gen_grads = c_grads
        critic, c_opt = self._apply("critic", c_grads, opt_state["critic"], params["critic"], clock)
        (a_loss, a_aux), a_grads = jax.value_and_grad(
            self.actor_loss, argnums=0 if gen is None else (0, 5), has_aux=True
        )(
            params["actor"],
            critic,
            log_alpha,
            batch,
            jax.random.normal(k_pi, shape),
            gen,
            None if gen is None else k_amask,
            c_aux.get("critic_masks"),
        )
        if gen is not None:
            a_grads, a_gen_grads = a_grads
        actor, a_opt = self._apply("actor", a_grads, opt_state["actor"], params["actor"], clock)
        log_prob = jax.lax.stop_gradient(a_aux["log_prob"])
        al_loss, al_grads = jax.value_and_grad(self.alpha_loss)(log_alpha, log_prob)
        al_updates, al_opt = self.alpha_tx.update(al_grads, opt_state["alpha"], log_alpha)
        log_alpha = optax.apply_updates(log_alpha, al_updates)

        critic_masks = get_sparse_state(c_opt).masks["critic"]
        target_critic = apply_masks(polyak(target_critic, critic, cfg.tau), critic_masks)
        q = jnp.min(c_aux["q"], axis=-1)
        metrics = {
            "critic_loss": c_loss,
            "actor_loss": a_loss,
            "alpha_loss": al_loss,
            "q_mean": q.mean(),
            "q_task": q.reshape(T, -1).mean(axis=1),
            "target_mean": c_aux["target"].mean(),
            "entropy": -log_prob.mean(),
        }
        new_params = {"actor": actor, "critic": critic, "log_alpha": log_alpha}
        new_opt = {"actor": a_opt, "critic": c_opt, "alpha": al_opt}
        if gen is not None:
            g = jax.tree.map(jnp.add, c_gen_grads, a_gen_grads)
            upd, gen_opt = self.maskgen.tx.update(g, opt_state["mask_gen"], gen)
            new_params = {**params, **new_params, "mask_gen": optax.apply_updates(gen, upd)}
            new_opt = {**opt_state, **new_opt, "mask_gen": gen_opt}
        return new_params, target_critic, new_opt, metrics

    def _train(self, ops: tuple) -> tuple:
        """The ``cond_any`` branch after warm-up: sample a batch, one gradient step."""
        params, target, opt_state, buffer, grad_steps, key = ops
        k_sample, k_step = jax.random.split(key)
        batch = replay_sample(buffer, k_sample, self.batch_per_task)
        params, target, opt_state, metrics = self.gradient_step(
            params, target, opt_state, batch, grad_steps, k_step
        )
        return params, target, opt_state, grad_steps + 1, metrics

    def _skip(self, ops: tuple) -> tuple:
        """The warm-up branch: nothing changes; zero metrics shaped like ``_train``'s."""
        params, target, opt_state, _, grad_steps, _ = ops
        shapes = jax.eval_shape(self._train, ops)[-1]
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return params, target, opt_state, grad_steps, zeros

    def _similarity_phase(self, ops: tuple) -> tuple:
        params, opt_state, buffer, key = ops
        k = self.env.num_envs // self.env.num_tasks
        params, opt_state, m = self.maskgen.similarity_phase(params, opt_state, buffer, key, k)
        return params, opt_state, m

    def _skip_phase(self, ops: tuple) -> tuple:
        params, opt_state, _, _ = ops
        shapes = jax.eval_shape(self._similarity_phase, ops)[-1]
        return params, opt_state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    # ---------------------------------------------------------------- update
    def _act(self, params: PyTree, obs: Array, key: Array, warmup: Array) -> Array:
        """Sampled policy actions, or uniform ones in [-1, 1] while ``warmup``."""
        k_pi, k_uniform = jax.random.split(key)
        task = jnp.asarray(self.env.task_ids)
        shape = (obs.shape[0], self.action_dim)
        action, _ = self._policy_sample(
            params["actor"],
            params.get("mask_gen"),
            obs,
            task,
            jax.random.normal(k_pi, shape),
            jax.random.fold_in(key, 2),
        )
        uniform = jax.random.uniform(k_uniform, shape, minval=-1.0, maxval=1.0)
        return jnp.where(warmup, uniform, action)

    def update(self, state: SACState) -> tuple[SACState, dict[str, Array]]:
        """``steps_per_update`` suite steps, each followed by a gradient step after warm-up."""
        cfg, env = self.config, self.env
        key, k_steps = jax.random.split(state.key)

        def step(carry, k):
            params, target, opt_state, buffer, env_state, obs, ret, succ, env_steps, grads = carry
            k_act, k_env, k_train = jax.random.split(k, 3)
            action = self._act(params, obs, k_act, env_steps < cfg.warmup_steps)
            out = env.step(k_env, env_state, action)
            done = out.terminated | out.truncated
            next_obs = jnp.where(done[:, None], out.final_obs, out.obs)
            transition = {
                "obs": obs,
                "action": action,
                "reward": out.reward,
                "next_obs": next_obs,
                "terminated": out.terminated,
            }
            buffer = replay_add(buffer, transition)
            ret = ret + out.reward
            succ = succ | out.success
            env_steps = env_steps + 1
            trained = env_steps > cfg.warmup_steps
            params, target, opt_state, grads, m = cond_any(
                trained,
                self._train,
                self._skip,
                (params, target, opt_state, buffer, grads, k_train),
            )
            if self.maskgen is not None:
                # The similarity phase after every ``maskgen.every``-th gradient step.
                phase = trained & (grads % self.maskgen.config.every == 0)
                params, opt_state, pm = cond_any(
                    phase,
                    self._similarity_phase,
                    self._skip_phase,
                    (params, opt_state, buffer, jax.random.fold_in(k_train, 1)),
                )
                m = {**m, **pm, "mask_phases": phase.astype(jnp.float32)}
            episodes = {
                "done": done,
                "episode_return": jnp.where(done, ret, 0.0),
                "success": succ & done,
            }
            carry = (
                params,
                target,
                opt_state,
                buffer,
                out.state,
                out.obs.astype(jnp.float32),
                jnp.where(done, 0.0, ret),
                succ & ~done,
                env_steps,
                grads,
            )
            return carry, (m, trained, episodes)

        carry = (
            state.params,
            state.target_critic,
            state.opt_state,
            state.buffer,
            state.env_state,
            state.obs,
            state.running_return,
            state.running_success,
            state.env_steps,
            state.grad_steps,
        )
        carry, (steps, trained, episodes) = jax.lax.scan(
            step, carry, jax.random.split(k_steps, cfg.steps_per_update)
        )
        params, target, opt_state, buffer, env_state, obs, ret, succ, env_steps, grads = carry

        n_trained = trained.sum()

        def mean_trained(x):
            w = trained.reshape(-1, *([1] * (x.ndim - 1))).astype(jnp.float32)
            return jnp.where(
                n_trained > 0, (x * w).sum(axis=0) / jnp.maximum(n_trained, 1), jnp.nan
            )

        phases = steps.pop("mask_phases", None)
        phase_keys = ("vae_loss", "mask_sim_loss")
        metrics = {k: mean_trained(v) for k, v in steps.items() if k not in phase_keys}
        if phases is not None:  # the similarity phases' losses: mean over the phases run
            n_phases = phases.sum()
            for k in phase_keys:
                total = jnp.sum(steps[k] * phases)
                metrics[k] = jnp.where(n_phases > 0, total / jnp.maximum(n_phases, 1), jnp.nan)
            metrics["mask_phases"] = n_phases.astype(jnp.int32)
        metrics["train_steps"] = n_trained.astype(jnp.int32)
        metrics["alpha"] = jnp.exp(params["log_alpha"])
        metrics.update(self._episode_metrics(episodes))
        metrics.update(self._sparsity_metrics(opt_state))
        finite = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves((params, target))]
        losses = jnp.stack([metrics[k] for k in ("critic_loss", "actor_loss", "alpha_loss")])
        finite.append((n_trained == 0) | jnp.all(jnp.isfinite(losses)))
        metrics["finite"] = jnp.all(jnp.stack(finite))
        new_state = state.replace(
            params=params,
            target_critic=target,
            opt_state=opt_state,
            buffer=buffer,
            env_state=env_state,
            obs=obs,
            running_return=ret,
            running_success=succ,
            key=key,
            env_steps=env_steps,
            grad_steps=grads,
        )
        return new_state, metrics

    def _episode_metrics(self, episodes: dict[str, Array]) -> dict[str, Array]:
        """Per-task sums over the episodes that finished during the update."""
        T, task = self.env.num_tasks, jnp.asarray(self.env.task_ids)

        def per_task(x):
            return jax.ops.segment_sum(x.astype(jnp.float32).sum(axis=0), task, T)

        return {
            "episodes": per_task(episodes["done"]),
            "return_sum": per_task(episodes["episode_return"]),
            "success_sum": per_task(episodes["success"]),
        }

    def _sparsity_metrics(self, opt_state: PyTree) -> dict[str, Array]:
        out, active, total = {}, jnp.int32(0), jnp.int32(0)
        for name in NETWORKS:
            a, t = _mask_sparsity(get_sparse_state(opt_state[name]).masks)
            out[f"{name}_sparsity"] = _fraction_pruned(a, t)
            active, total = active + a, total + t
        out["sparsity"] = _fraction_pruned(active, total)
        return out

    # ----------------------------------------------------------- diagnostics
    def recent_batch(self, buffer: ReplayState) -> dict[str, Array]:
        """The ``plasticity.batch // T`` most recent transitions of every task (fewer distinct
        ones, repeated, while the buffer holds fewer), as a task-major batch."""
        T = self.env.num_tasks
        per_task = max(1, self.plasticity.batch // T)
        back = jnp.arange(per_task, dtype=jnp.int32) % jnp.maximum(buffer.size, 1)
        rows = (buffer.pos - 1 - back) % buffer.capacity
        return jax.tree.map(lambda x: x[:, rows].reshape(T * per_task, *x.shape[2:]), buffer.data)

    def diagnose(self, state: SACState, key: Array) -> dict[str, Array]:
        """Plasticity diagnostics of actor and critics on the most recent transitions of the
        replay buffer (``recent_batch``): tau-dormant fractions of the hidden layers (the sown
        activations; actor; both critics pooled, on the buffer's actions), srank of each
        network's last hidden layer (``SACNetworks.actor_features``; the critics': ``critic_0``),
        and the actor's Fisher trace
        ``E ||grad log pi(a|s)||^2`` over live weights, ``a ~ pi(.|s)`` (the log-density of the
        pre-tanh sample, whose tanh correction does not depend on the parameters)."""
        if not self.plasticity.diagnostics:
            raise ValueError("diagnose needs PlasticityConfig(diagnostics=True)")
        pl, net, params = self.plasticity, self.net, state.params
        batch = self.recent_batch(state.buffer)
        obs = batch["obs"]
        task = self._tasks(obs.shape[0])
        gen = params.get("mask_gen")
        a_masks = self._masks(gen, "actor", obs, task, None)
        (mean, log_std), a_inter = net.actor(
            params["actor"], obs, task, task_major=True, masks=a_masks, mutable=["intermediates"]
        )
        c_masks = self._masks(gen, "critic", obs, task, None)
        _, c_inter = net.critic(
            params["critic"],
            obs,
            batch["action"],
            task,
            task_major=True,
            masks=c_masks,
            mutable=["intermediates"],
        )
        actor_acts = flatten_intermediates(a_inter)
        critic_acts = flatten_intermediates(c_inter)
        actor_d = dormant_fraction(actor_acts, pl.tau)
        critic_d = dormant_fraction(critic_acts, pl.tau)
        out = {
            "dormant": (actor_d.count + critic_d.count) / (actor_d.total + critic_d.total),
            "actor_dormant": actor_d.overall,
            "critic_dormant": critic_d.overall,
            "actor_erank": effective_rank(actor_acts[net.actor_features]),
            "critic_erank": effective_rank(critic_acts[net.critic_features]),
        }
        for name, frac in actor_d.per_layer.items():
            out[f"actor_dormant_{name}"] = frac
        pre_tanh = jax.lax.stop_gradient(
            mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        )

        def log_prob(p: PyTree, o: tuple, u: Array) -> Array:
            neuron_masks = tuple(x[None] for x in o[2]) if len(o) > 2 else None
            m, ls = net.actor(p, o[0][None], o[1][None], masks=neuron_masks)
            z = (u - m[0]) * jnp.exp(-ls[0])
            return jnp.sum(-0.5 * jnp.square(z) - ls[0])

        masks = get_sparse_state(state.opt_state["actor"]).masks["actor"]
        inputs = (obs, task) if a_masks is None else (obs, task, a_masks)
        out["fisher_trace"] = jnp.mean(
            per_sample_fisher(log_prob, params["actor"], inputs, pre_tanh, masks, pl.fisher_chunk)
        )
        if self.maskgen is not None:
            gen_masks = {"actor": a_masks, "critic": c_masks}
            key = jax.random.fold_in(key, 1)
            out.update(self._maskgen_diagnostics(state, obs, task, gen_masks, key))
        return out

    def _maskgen_diagnostics(
        self, state: SACState, obs: Array, task: Array, masks: dict[str, Any], key: Array
    ) -> dict[str, Array]:
        """The mask generator's logs (``masks``: the deterministic masks on the diagnostics
        batch ``obs``, as ``diagnose`` computed them):
        the task-by-task similarity of the actor's and the critics' masks and of the policies
        (the VAE on fresh segments), upper triangles as ``{actor_mask,critic_mask,policy}_sim/
        {i}-{j}``; the neurons each task uses per layer (on at least one of its samples),
        ``{actor,critic}_active_{layer}/{task}`` (the critics: ``critic_0``)."""
        mg, params, T = self.maskgen, state.params, self.env.num_tasks
        sims = mg.mask_similarity(params["mask_gen"], obs, None)
        segments = mg.segments(state.buffer, key, self.env.num_envs // T)
        sims = {
            "actor_mask": sims["actor"],
            "critic_mask": sims["critic"],
            "policy": mg.policy_similarity(params["vae"], segments),
        }
        out = {}
        for name, sim in sims.items():
            for i in range(T):
                for j in range(i + 1, T):
                    out[f"{name}_sim/{i}-{j}"] = sim[i, j]
        for name in ("actor", "critic"):
            active = mg.active_per_task(masks[name], task)  # [T, layers]
            for t in range(T):
                for layer in range(active.shape[1]):
                    out[f"{name}_active_{layer}/{t}"] = active[t, layer]
        return out

    # -------------------------------------------------------------- evaluate
    def evaluate(self, params: PyTree, key: Array) -> dict[str, Array]:
        """Deterministic policy (``tanh(mean)``), one episode per evaluation environment
        (``eval_env``): per-task mean return and success rate (success at any step)."""
        env, net = self.eval_env, self.net
        T, n = env.num_tasks, env.num_envs
        task = jnp.asarray(env.task_ids)
        k_reset, k_steps = jax.random.split(key)
        obs, env_state = strong_types(env.reset(k_reset))
        zeros, false = jnp.zeros(n, jnp.float32), jnp.zeros(n, bool)
        init = (obs.astype(jnp.float32), env_state, zeros, zeros, false, false, false, 0)

        def cond(carry):
            *_, finished, _, _, t = carry
            return (t < env.max_episode_steps) & ~jnp.all(finished)

        def body(carry):
            obs, env_state, running, final, finished, succ, final_succ, t = carry
            masks = self._masks(params.get("mask_gen"), "actor", obs, task, None)
            mean, _ = net.actor(params["actor"], obs, task, task_major=True, masks=masks)
            out = env.step(jax.random.fold_in(k_steps, t), env_state, deterministic_action(mean))
            ret = running + out.reward
            succ = succ | out.success
            done = (out.terminated | out.truncated) & ~finished
            final = jnp.where(done, ret, final)
            final_succ = final_succ | (done & succ)
            ended = out.terminated | out.truncated
            return (
                out.obs.astype(jnp.float32),
                out.state,
                jnp.where(ended, 0.0, ret),
                final,
                finished | done,
                succ & ~ended,
                final_succ,
                t + 1,
            )

        *_, final, _, _, success, _ = jax.lax.while_loop(cond, body, init)
        count = jax.ops.segment_sum(jnp.ones(n), task, T)
        return {
            "return": jax.ops.segment_sum(final, task, T) / count,
            "success": jax.ops.segment_sum(success.astype(jnp.float32), task, T) / count,
        }
