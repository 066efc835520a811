"""Experiment configuration: one YAML file per experiment under ``experiments/``, overridable from
the command line with ``key.sub=value``, validated by pydantic before anything compiles.

Every error names the field and what is allowed (an unknown key, a wrong type, a value out of
range or not among the choices). Steps are environment steps per task (one step of every task's
environment counts once, as in MOORE's and the sparsity paper's protocol).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"

Method = Literal["dense", "static", "gmp", "set", "rigl", "grow"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvConfig(_Strict):
    """Which environments: a MiniGrid suite (or task list), or one gymnax environment."""

    kind: Literal["minigrid", "gymnax"] = "minigrid"
    suite: str | list[str] = Field("MT3", description="MT3/MT5/MT7, a task list, or a gymnax id")
    num_envs_per_task: int = Field(16, ge=1)
    eval_episodes_per_task: int = Field(25, ge=1, description="greedy episodes per evaluation")
    best_return: float | None = Field(None, gt=0, description="gymnax: return of a perfect run")


class NetConfig(_Strict):
    arch: Literal["mtppo", "moe", "moore", "mlp"] = "mtppo"
    layer_norm: bool = False
    shared_encoder: bool | None = Field(None, description="None: MTPPO shared, MoE/MOORE not")
    n_experts: int | None = Field(None, ge=1, description="None: MT3 2, MT5 3, MT7 4")
    hidden: int = Field(64, ge=1, description="mlp only")
    prune_task_weights: bool = Field(
        False, description="prune the MoE/MOORE task-weight layer (T x n_experts) too"
    )


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


class PlasticitySection(_Strict):
    """Plasticity diagnostics and interventions (schedules in environment steps per task)."""

    diagnostics: bool | None = Field(
        None, description="dormant/srank/Fisher at every evaluation; None: on for MiniGrid"
    )
    batch: int = Field(1024, ge=1, description="recent observations the metrics and ReDo use")
    tau: float = Field(0.001, ge=0, description="dormant threshold of the logged fractions")
    redo_every: int = Field(0, ge=0, description="steps between ReDo recycling; 0 off")
    redo_tau: float = Field(0.001, ge=0)
    reset_every: int = Field(0, ge=0, description="steps between output-layer resets; 0 off")
    reset_max: int = Field(2, ge=0, description="at most this many resets")


class TrainConfig(_Strict):
    total_steps: int = Field(400_000, ge=1, description="environment steps per task")
    eval_every: int = Field(10_000, ge=1, description="steps between evaluations (= one chunk)")
    checkpoint_every: int = Field(10_000, ge=1, description="a multiple of eval_every")


class ExperimentConfig(_Strict):
    name: str
    algo: Literal["ppo"] = "ppo"
    seeds: int = Field(30, ge=1, description="seeds trained at once (vmapped)")
    seed: int = Field(0, ge=0, description="base seed; seed i uses fold_in(PRNGKey(seed), i)")
    on_nonfinite: Literal["stop", "drop"] = Field(
        "stop", description="a seed with NaN/inf: stop the run, or drop that seed and go on"
    )
    out_dir: str = "runs"
    env: EnvConfig = EnvConfig()
    net: NetConfig = NetConfig()
    ppo: PPOSection = PPOSection()
    sparsity: SparsityConfig = SparsityConfig()
    plasticity: PlasticitySection = PlasticitySection()
    train: TrainConfig = TrainConfig()

    @property
    def steps_per_update(self) -> int:
        return self.ppo.rollout_length * self.env.num_envs_per_task

    @property
    def diagnostics(self) -> bool:
        """Whether plasticity diagnostics run (``plasticity.diagnostics``, None: MiniGrid)."""
        d = self.plasticity.diagnostics
        return self.env.kind == "minigrid" if d is None else d

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        spu, tr = self.steps_per_update, self.train
        if tr.eval_every % spu:
            raise ValueError(
                f"train.eval_every ({tr.eval_every}) must be a multiple of the steps per update "
                f"ppo.rollout_length x env.num_envs_per_task = {spu}"
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
        if e["type"] in ("missing",):
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
