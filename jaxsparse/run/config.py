"""Experiment configuration: one YAML file per experiment under ``experiments/``, overridable from
the command line with ``key.sub=value``, validated by pydantic before anything compiles.

Every error names the field and what is allowed (an unknown key, a wrong type, a value out of
range or not among the choices). Steps are environment steps per task (one step of every task's
environment counts once, as in MOORE's and the sparsity paper's protocol). With ``algo: sac``
steps are suite steps (one step of every environment, ``sac.steps_per_update`` per update), as
in ``jaxsparse.algos.sac``: the same as steps per task with one environment per task (MT-SAC's
protocol); with ``env.num_envs_per_task = k`` a suite step is k environment steps per task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"

Method = Literal["dense", "static", "gmp", "set", "rigl", "grow"]
PPO_ARCHS = ("mtppo", "moe", "moore", "mlp")
SAC_ARCHS = ("mtmhsac", "mooresac", "softmod")  # = jaxsparse.nets.sac.SAC_ARCHS
# sac.actor_hidden / sac.critic_hidden when left out (= jaxsparse.nets.sac.DEFAULT_HIDDEN): 3x400
# (MT-SAC; MOORE's experts), 2x400 (Soft Modularization's base network, its MT10 configs).
MOORE_SAC_EXPERTS = 4  # net.n_experts None with mooresac (MOORE's MT10 setting)
SAC_DEFAULT_HIDDEN = {
    "mtmhsac": [400, 400, 400],
    "mooresac": [400, 400, 400],
    "softmod": [400, 400],
}
Width = Annotated[int, Field(ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvConfig(_Strict):
    """Which environments: a MiniGrid suite (or task list), one gymnax environment, or Meta-World
    tasks on MJX (``kind: metaworld``, ``suite: MT10`` or a list of MT10 task names; SAC only).

    gymnax scores: ``score = (return - random_return) / (best_return - random_return)``, so 0 is
    a uniformly random policy and 1 a perfect one (``random_return`` None counts as 0: the
    score is ``return / best_return``, CartPole's convention). Environments with negative
    returns (Pendulum) need both; a score may leave [0, 1] (worse than random, better than the
    reference).
    """

    kind: Literal["minigrid", "gymnax", "metaworld"] = "minigrid"
    suite: str | list[str] = Field(
        "MT3", description="MT3/MT5/MT7 or a task list; a gymnax id; MT10 or Meta-World tasks"
    )
    num_envs_per_task: int = Field(16, ge=1)
    eval_episodes_per_task: int = Field(25, ge=1, description="greedy episodes per evaluation")
    best_return: float | None = Field(
        None, description="gymnax: return of a perfect run (None: the time limit; PPO only)"
    )
    random_return: float | None = Field(
        None, description="gymnax, SAC: return of a uniformly random policy (score 0)"
    )
    fixed_goals: int = Field(
        0,
        ge=0,
        description="metaworld: 0 samples a new goal at every reset; K draws K reset vectors per "
        "task once (from the run's seed) and every reset picks one (1: Meta-World's fixed-goal "
        "mode; 50: its MT10 benchmark tasks)",
    )

    @model_validator(mode="after")
    def _score_range(self) -> EnvConfig:
        if self.best_return is not None:
            low = 0.0 if self.random_return is None else self.random_return
            if self.best_return <= low:
                what = "0" if self.random_return is None else f"random_return ({low})"
                raise ValueError(f"best_return ({self.best_return}) must be greater than {what}")
        return self


class SoftModSection(_Strict):
    """Soft Modularization's sizes (``jaxsparse.nets.sac_archs.SoftModSpec``); defaults: the
    official MT10 "Shallow" config (its "Deep" one: layers 4, modules 4, module_hidden 128). The
    base network's widths are ``sac.actor_hidden`` / ``sac.critic_hidden``."""

    layers: int = Field(2, ge=2, description="layers of modules")
    modules: int = Field(2, ge=1, description="modules per layer")
    module_hidden: int = Field(256, ge=1, description="width of every module")
    gating_hidden: int = Field(256, ge=1, description="width of the routing network")
    gating_layers: int = Field(2, ge=0, description="layers of the routing network")


class NetConfig(_Strict):
    """PPO: mtppo/moe/moore (MiniGrid), mlp (gymnax). SAC (``jaxsparse.nets.sac``): mtmhsac
    (multi-head actor and twin critics), mooresac (MOORE: orthogonal mixture of MLP experts,
    per-task heads), softmod (Soft Modularization, ``net.softmod``); widths in the ``sac``
    section."""

    arch: Literal["mtppo", "moe", "moore", "mlp", "mtmhsac", "mooresac", "softmod"] = "mtppo"
    layer_norm: bool = False
    shared_encoder: bool | None = Field(None, description="None: MTPPO shared, MoE/MOORE not")
    n_experts: int | None = Field(
        None, ge=1, description="None: MT3 2, MT5 3, MT7 4; mooresac: 4 (MOORE's MT10)"
    )
    hidden: int = Field(64, ge=1, description="mlp only")
    prune_task_weights: bool = Field(
        False,
        description="prune the MoE/MOORE task-weight layer (T x n_experts) too; softmod: its "
        "task embedding (T x width)",
    )
    softmod: SoftModSection = Field(default_factory=SoftModSection, description="softmod only")


class MethodConfig(_Strict):
    """One sparse-training method; schedule points are fractions of training, periods are steps."""

    method: Method = "dense"
    sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    distribution: Literal["uniform", "erk"] | None = Field(None, description="None: method's")
    start: float | None = Field(None, ge=0.0, le=1.0, description="fraction of training")
    end: float | None = Field(None, ge=0.0, le=1.0, description="fraction of training")
    freq: int = Field(500, ge=1, description="environment steps between mask updates")
    drop_fraction: float = Field(0.3, gt=0.0, le=1.0)
    final_sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="grow only")

    @model_validator(mode="after")
    def _window(self) -> MethodConfig:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        if self.method in ("static", "gmp", "set", "rigl") and self.sparsity == 0.0:
            raise ValueError(f"method {self.method!r} needs sparsity in (0, 1), got 0.0")
        return self


class SparsityConfig(MethodConfig):
    """The default method, and per-module overrides (MST): parameter-path prefix -> method."""

    modules: dict[str, MethodConfig] = Field(default_factory=dict)


class PPOSection(_Strict):
    rollout_length: int = Field(125, ge=1, description="steps per env per update")
    lr: float = Field(1e-3, gt=0)
    gamma: float = Field(0.99, ge=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    clip_eps: float = Field(0.2, gt=0)
    ent_coef: float = Field(0.01, ge=0)
    policy_epochs: int = Field(8, ge=1)
    policy_minibatch_per_task: int = Field(256, ge=1)
    critic_epochs: int = Field(1, ge=0)
    critic_batch: int = Field(2000, ge=1)
    max_grad_norm: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="decoupled (AdamW) when > 0; paper 1e-6")
    advantage_norm: Literal["task", "batch", "minibatch", "none"] = "task"
    surgery: Literal["none", "pcgrad", "cagrad"] = Field(
        "none", description="per-task gradient surgery before the optimiser"
    )
    cagrad_c: float = Field(0.5, ge=0, description="CAGrad's c")


class SACSection(_Strict):
    """``jaxsparse.algos.sac.SACConfig`` (same names and defaults: the MT10 protocol); steps are
    suite steps (one step of every environment), one gradient step per suite step after the
    warm-up."""

    steps_per_update: int = Field(500, ge=1, description="suite (and gradient) steps per update")
    gamma: float = Field(0.99, ge=0, le=1)
    tau: float = Field(0.005, ge=0, le=1, description="Polyak step of the target critics")
    init_alpha: float = Field(1.0, gt=0, description="every task's initial temperature")
    target_entropy: float | None = Field(None, description="None: -action_dim")
    actor_lr: float = Field(3e-4, gt=0)
    critic_lr: float = Field(3e-4, gt=0)
    alpha_lr: float = Field(3e-4, gt=0)
    adam_eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="global norm, per optimiser")
    batch_size: int = Field(1280, ge=1, description="in total, split evenly over tasks")
    buffer_size: int = Field(1_000_000, ge=1, description="in total, split evenly over tasks")
    warmup_steps: int = Field(
        4_000,
        ge=0,
        description="suite steps of uniform random actions, no gradient steps (MT10's 40k "
        "environment steps = 4k suite steps of its 10 environments)",
    )
    # Left out of an algo 'sac' experiment: net.arch's default (SAC_DEFAULT_HIDDEN), filled in
    # when the experiment validates (``ExperimentConfig._sac_widths``).
    actor_hidden: list[Width] = Field(
        [400, 400, 400], min_length=1, description="left out: the arch's (softmod: 400x2)"
    )
    critic_hidden: list[Width] = Field(
        [400, 400, 400], min_length=1, description="left out: the arch's (softmod: 400x2)"
    )


class MaskGenSection(_Strict):
    """The neuron-level mask generator (``jaxsparse.algos.maskgen``; algo 'sac' with net.arch
    'mtmhsac'): a network maps (state, task, ratio) to binary neuron masks of every hidden layer
    of the actor and the critics, ``round((1 - ratio) * width)`` neurons on per layer and sample,
    trained by the SAC losses and, every ``every`` gradient steps, by the mask-similarity loss
    (towards the tasks' policy similarity from a trajectory VAE)."""

    enabled: bool = False
    ratio: float = Field(0.8, ge=0.0, lt=1.0, description="fraction of neurons masked off")
    hidden: list[Width] = Field([256, 256], min_length=1, description="generator body widths")
    temperature: float = Field(1.0, gt=0, description="of the straight-through relaxation")
    lr: float = Field(3e-4, gt=0, description="generators, on the SAC losses")
    every: int = Field(1000, ge=1, description="gradient steps between similarity phases")
    sim_steps: int = Field(5, ge=0, description="generator steps on the similarity loss")
    sim_lr: float = Field(1e-4, gt=0)
    sim_states: int = Field(256, ge=1, description="common batch of states of the similarity")
    segment_length: int = Field(10, ge=1, description="steps per trajectory segment (VAE)")
    segments_per_task: int = Field(32, ge=1)
    vae_latent: int = Field(8, ge=1)
    vae_hidden: int = Field(256, ge=1)
    vae_lr: float = Field(1e-3, gt=0)
    vae_steps: int = Field(5, ge=0, description="VAE steps per similarity phase")
    vae_beta: float = Field(1.0, ge=0, description="weight of the VAE's prior KL")


class PlasticitySection(_Strict):
    """Plasticity diagnostics and interventions (schedules in environment steps per task)."""

    diagnostics: bool | None = Field(
        None,
        description="dormant/srank/Fisher at every evaluation; None: on (MiniGrid, Meta-World)",
    )
    batch: int = Field(1024, ge=1, description="recent observations the metrics and ReDo use")
    tau: float = Field(0.001, ge=0, description="dormant threshold of the logged fractions")
    redo_every: int = Field(0, ge=0, description="steps between ReDo recycling; 0 off")
    redo_tau: float = Field(0.001, ge=0)
    reset_every: int = Field(0, ge=0, description="steps between output-layer resets; 0 off")
    reset_max: int = Field(2, ge=0, description="at most this many resets")


class TrainConfig(_Strict):
    total_steps: int = Field(400_000, ge=1, description="environment steps per task (SAC: suite)")
    eval_every: int = Field(10_000, ge=1, description="steps between evaluations (= one chunk)")
    checkpoint_every: int = Field(10_000, ge=1, description="a multiple of eval_every")


class ExperimentConfig(_Strict):
    name: str
    algo: Literal["ppo", "sac"] = "ppo"
    seeds: int = Field(30, ge=1, description="seeds trained at once (vmapped)")
    seed: int = Field(0, ge=0, description="base seed; seed i uses fold_in(PRNGKey(seed), i)")
    on_nonfinite: Literal["stop", "drop"] = Field(
        "stop", description="a seed with NaN/inf: stop the run, or drop that seed and go on"
    )
    out_dir: str = "runs"
    env: EnvConfig = EnvConfig()
    net: NetConfig = NetConfig()
    ppo: PPOSection = PPOSection()
    sac: SACSection = SACSection()
    sparsity: SparsityConfig = SparsityConfig()
    maskgen: MaskGenSection = MaskGenSection()
    plasticity: PlasticitySection = PlasticitySection()
    train: TrainConfig = TrainConfig()

    @property
    def steps_per_update(self) -> int:
        if self.algo == "sac":
            return self.sac.steps_per_update
        return self.ppo.rollout_length * self.env.num_envs_per_task

    @property
    def diagnostics(self) -> bool:
        """Whether plasticity diagnostics run (``plasticity.diagnostics``; None: on for MiniGrid
        and Meta-World, off for gymnax)."""
        d = self.plasticity.diagnostics
        return self.env.kind in ("minigrid", "metaworld") if d is None else d

    @model_validator(mode="before")
    @classmethod
    def _sac_widths(cls, data: Any) -> Any:
        """``algo: sac``: ``sac.actor_hidden`` / ``sac.critic_hidden`` left out take
        ``net.arch``'s default widths (``SAC_DEFAULT_HIDDEN``; the field default, 400x3, is
        mtmhsac's), so a saved config names them."""
        if not isinstance(data, dict) or data.get("algo") != "sac":
            return data
        net = data.get("net")
        arch = net.get("arch") if isinstance(net, dict) else getattr(net, "arch", None)
        widths = SAC_DEFAULT_HIDDEN.get(arch) if isinstance(arch, str) else None
        sac = data.get("sac", {})
        if widths is None or not isinstance(sac, dict):
            return data  # a wrong arch or section (the checks report it), or a built section
        fill = {k: list(widths) for k in ("actor_hidden", "critic_hidden") if k not in sac}
        return {**data, "sac": {**sac, **fill}}

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        spu, tr = self.steps_per_update, self.train
        if tr.eval_every % spu:
            what = (
                "sac.steps_per_update"
                if self.algo == "sac"
                else "ppo.rollout_length x env.num_envs_per_task"
            )
            raise ValueError(
                f"train.eval_every ({tr.eval_every}) must be a multiple of the steps per update "
                f"{what} = {spu}"
            )
        if tr.total_steps % tr.eval_every:
            raise ValueError(
                f"train.total_steps ({tr.total_steps}) must be a multiple of train.eval_every "
                f"({tr.eval_every})"
            )
        if tr.checkpoint_every % tr.eval_every:
            raise ValueError(
                f"train.checkpoint_every ({tr.checkpoint_every}) must be a multiple of "
                f"train.eval_every ({tr.eval_every})"
            )
        if self.env.kind != "metaworld" and self.env.fixed_goals:
            raise ValueError("env.fixed_goals is for env.kind 'metaworld' only")
        if self.algo == "sac":
            self._sac_consistent()
            return self
        if self.net.arch not in PPO_ARCHS:
            raise ValueError(
                f"net.arch {self.net.arch!r} does not fit algo 'ppo': use net.arch "
                f"{'/'.join(map(repr, PPO_ARCHS))} with algo 'ppo' "
                f"({'/'.join(map(repr, SAC_ARCHS))} with algo 'sac')"
            )
        if self.sac != SACSection():
            raise ValueError("sac.* settings are for algo 'sac'; this experiment's algo is 'ppo'")
        if self.maskgen != MaskGenSection():
            raise ValueError(
                "maskgen.*: the mask generator is for algo 'sac' (net.arch 'mtmhsac'); this "
                "experiment's algo is 'ppo'"
            )
        if self.net.softmod != SoftModSection():
            raise ValueError(
                "net.softmod: only for net.arch 'softmod' (algo 'sac'); this experiment's algo is "
                "'ppo'"
            )
        if self.env.kind == "metaworld":
            raise ValueError("env.kind 'metaworld' is for algo 'sac' (multi-task SAC on MT10)")
        if self.env.random_return is not None:
            raise ValueError("env.random_return is for algo 'sac' only (PPO scores return/best)")
        if (self.net.arch == "mlp") != (self.env.kind == "gymnax"):
            raise ValueError(
                f"net.arch {self.net.arch!r} does not fit env.kind {self.env.kind!r}: "
                "use arch 'mlp' with gymnax, 'mtppo'/'moe'/'moore' with minigrid"
            )
        if self.env.kind == "gymnax" and not isinstance(self.env.suite, str):
            raise ValueError("env.suite must be one gymnax environment id for env.kind 'gymnax'")
        pl = self.plasticity
        if self.env.kind == "gymnax":
            used = [
                name
                for name, on in (
                    ("plasticity.diagnostics", pl.diagnostics),
                    ("plasticity.redo_every", pl.redo_every),
                    ("plasticity.reset_every", pl.reset_every),
                    ("ppo.surgery", self.ppo.surgery != "none"),
                )
                if on
            ]
            if used:
                raise ValueError(
                    f"{', '.join(used)}: only for the MiniGrid networks (env.kind 'minigrid')"
                )
        methods = [self.sparsity.method] + [m.method for m in self.sparsity.modules.values()]
        if self.ppo.surgery != "none" and "rigl" in methods:
            raise ValueError(
                f"ppo.surgery {self.ppo.surgery!r} does not combine with method 'rigl' (RigL "
                "grows from dense gradients; the surgery sees only live weights)"
            )
        return self

    def _sac_consistent(self) -> None:
        """Checks of ``algo: sac`` (Meta-World or continuous gymnax, multi-head SAC networks)."""
        if self.net.arch not in SAC_ARCHS:
            raise ValueError(
                f"net.arch {self.net.arch!r} does not fit algo 'sac': use net.arch "
                f"{'/'.join(map(repr, SAC_ARCHS))} with algo 'sac' "
                f"({'/'.join(map(repr, PPO_ARCHS))} with algo 'ppo')"
            )
        arch, default = self.net.arch, NetConfig()
        used = {
            "mtmhsac": (),
            "mooresac": ("n_experts", "prune_task_weights"),
            "softmod": ("softmod", "prune_task_weights"),
        }[arch]
        unused = [
            f"net.{k}"
            for k in NetConfig.model_fields
            if k != "arch" and k not in used and getattr(self.net, k) != getattr(default, k)
        ]
        if unused:
            extra = f"; it reads net.{', net.'.join(used)}" if used else ""
            raise ValueError(
                f"{', '.join(unused)}: not used by algo 'sac' with net.arch {arch!r} (its network "
                f"widths are sac.actor_hidden / sac.critic_hidden{extra})"
            )
        n_experts = self.net.n_experts or MOORE_SAC_EXPERTS
        if arch == "mooresac":
            for name in ("actor_hidden", "critic_hidden"):
                widths = getattr(self.sac, name)
                if widths[-1] < n_experts:
                    raise ValueError(
                        f"sac.{name}[-1] ({widths[-1]}) must be at least net.n_experts "
                        f"({n_experts}) for net.arch 'mooresac' (Gram-Schmidt orthonormalises "
                        "the experts' last-layer outputs)"
                    )
        e = self.env
        if e.kind == "metaworld":
            metaworld_tasks(e.suite)
            given = [
                f"env.{k}" for k in ("best_return", "random_return") if getattr(e, k) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: not used with env.kind 'metaworld' (the score is the "
                    "success rate)"
                )
        elif e.kind != "gymnax" or not isinstance(e.suite, str):
            raise ValueError(
                "algo 'sac' needs env.kind 'metaworld' (env.suite MT10 or a list of its tasks) or "
                "env.kind 'gymnax' with env.suite one gymnax environment id with a continuous "
                "(Box) action space, e.g. Pendulum-v1"
            )
        elif e.best_return is None:
            raise ValueError(
                "algo 'sac' on gymnax needs env.best_return (the return that scores 1; with "
                "negative returns also env.random_return, the return that scores 0)"
            )
        if self.ppo != PPOSection():
            raise ValueError("ppo.* settings are for algo 'ppo'; this experiment's algo is 'sac'")
        pl = self.plasticity
        used = [
            name
            for name, on in (
                ("plasticity.redo_every", pl.redo_every),
                ("plasticity.reset_every", pl.reset_every),
            )
            if on
        ]
        if used:
            raise ValueError(
                f"{', '.join(used)}: the plasticity interventions are for algo 'ppo' on "
                "MiniGrid only; algo 'sac' runs the diagnostics (plasticity.diagnostics)"
            )
        sac, tr = self.sac, self.train
        self._maskgen_consistent()
        if sac.warmup_steps >= tr.total_steps:
            raise ValueError(
                f"sac.warmup_steps ({sac.warmup_steps}) must be less than train.total_steps "
                f"({tr.total_steps}): no gradient step would run"
            )
        if sac.buffer_size < self.env.num_envs_per_task:
            raise ValueError(
                f"sac.buffer_size ({sac.buffer_size}) must hold one suite step "
                f"(env.num_envs_per_task = {self.env.num_envs_per_task})"
            )

    def _maskgen_consistent(self) -> None:
        mg, sac = self.maskgen, self.sac
        if not mg.enabled:
            if mg != MaskGenSection():
                raise ValueError("maskgen.* settings are given but maskgen.enabled is false")
            return
        if self.net.arch != "mtmhsac":
            raise ValueError(
                f"maskgen.enabled needs net.arch 'mtmhsac' (the generator masks its hidden "
                f"neurons), got {self.net.arch!r}"
            )
        from jaxsparse.nets.maskgen import active_neurons

        for name in ("actor_hidden", "critic_hidden"):
            for w in getattr(sac, name):
                try:
                    active_neurons(mg.ratio, w)
                except ValueError as err:
                    raise ValueError(f"maskgen.ratio, sac.{name}: {err}") from None
        if sac.warmup_steps < mg.segment_length:
            raise ValueError(
                f"sac.warmup_steps ({sac.warmup_steps}) must be at least maskgen.segment_length "
                f"({mg.segment_length}): similarity phases cut segments from the buffer"
            )


def metaworld_tasks(suite: str | list[str]) -> tuple[str, ...]:
    """The Meta-World tasks of ``env.suite`` (``"MT10"``, one task name or a list), checked:
    MT10 names, each at most once, ported to MJX (``envs.metaworld.PORTED_TASKS``)."""
    from envs.metaworld import PORTED_TASKS, TASK_NAMES

    if suite == "MT10":
        tasks = tuple(TASK_NAMES)
    else:
        tasks = (suite,) if isinstance(suite, str) else tuple(suite)
    if not tasks:
        raise ValueError("env.suite names no Meta-World task")
    unknown = [t for t in tasks if t not in TASK_NAMES]
    if unknown:
        raise ValueError(
            f"env.suite: unknown Meta-World task(s) {unknown}; allowed: 'MT10' or a list of "
            f"{list(TASK_NAMES)}"
        )
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"env.suite names a task more than once: {list(tasks)}")
    missing = [t for t in tasks if t not in PORTED_TASKS]
    if missing:
        raise ValueError(
            f"env.suite: {missing} not ported to MJX yet (envs/metaworld/README.md); ported: "
            f"{list(PORTED_TASKS)}, e.g. env.suite=[{','.join(PORTED_TASKS)}]"
        )
    return tasks


class ConfigError(ValueError):
    """A bad experiment file or override; the message names every offending field."""


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(experiment)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(ExperimentConfig, [str(p) for p in e["loc"][:-1]])
            msg = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        got = f" (got {e['input']!r})" if e["type"] != "extra_forbidden" and "input" in e else ""
        if e["type"] in ("missing",) or not e["loc"]:  # not the whole experiment as "got"
            got = ""
        lines.append(f"  {loc}: {msg}{got}")
    return "invalid experiment config:\n" + "\n".join(lines)


def _allowed_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return sorted(model.model_fields)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["ppo.lr=3e-4", "net.arch=moore"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. ppo.lr=3e-4)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r} has an empty key component")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def experiment_path(name: str) -> Path:
    """``name`` as a path to a YAML file, or the file ``experiments/<name>.yaml``."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = EXPERIMENTS_DIR / f"{name}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
    raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(known)} (or a .yaml path)")


def config_from_dict(data: dict[str, Any]) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err)) from None


def load_experiment(name: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load ``experiments/<name>.yaml`` (or a path), apply ``key=value`` overrides, validate."""
    path = experiment_path(name)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    data.setdefault("name", path.stem)
    return config_from_dict(_merge(data, parse_overrides(overrides or [])))


def config_diff(a: ExperimentConfig, b: ExperimentConfig, ignore: tuple[str, ...] = ()) -> list:
    """Dotted fields where two configs differ (for refusing a checkpoint of another config)."""
    flat_a, flat_b = _flatten(a.model_dump()), _flatten(b.model_dump())
    keys = sorted(set(flat_a) | set(flat_b))
    return [
        (k, flat_a.get(k), flat_b.get(k))
        for k in keys
        if flat_a.get(k) != flat_b.get(k) and not any(k.startswith(i) for i in ignore)
    ]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k != "modules":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(), sort_keys=False)
