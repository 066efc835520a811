"""The chunked runner shared by every algorithm.

``init`` and a chunk's three programs (the trainer's ``train_chunk``, ``evaluate`` and
``diagnose``, compiled apart: XLA's compile time grows faster than the program) are ``vmap``ped
over seeds and jitted once; the seed axis is sharded over the local devices (and over hosts
after ``jax.distributed.initialize``). Between chunks, and only there, Python logs the metrics
(CSV), draws progress, checks every seed for NaN/inf and saves an orbax checkpoint.
``resume=True`` restores the last checkpoint and truncates the CSVs to it, so a run killed at
any moment and resumed ends bit-for-bit where an uninterrupted run ends.

Run folder: ``config.yaml`` (resolved), ``metrics.csv`` (per step, seed, task: evaluation and
training episode scores), ``train.csv`` (per step, seed: losses, sparsity, ReDo/Reset counts),
``diagnostics.csv`` (per step, seed: dormant fractions, srank, Fisher trace), ``checkpoints/``,
``plots/*.png``, ``summary.json`` (written when the run completes).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pandas as pd
import yaml
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxsparse.run.build import Trainer, build_trainer
from jaxsparse.run.config import (
    ConfigError,
    ExperimentConfig,
    config_diff,
    config_from_dict,
    dump_config,
)

# Fields that may change between an interrupted run and its resume.
_RESUMABLE = ("out_dir", "on_nonfinite")
_SUMMED = (
    "recycled",
    "reset",
    "mask_phases",
)  # per-chunk totals in train.csv; other scalars are chunk means


class DivergedError(RuntimeError):
    """A seed produced NaN/inf; the last good checkpoint is kept."""


def maybe_initialize_distributed() -> None:
    """``jax.distributed.initialize()`` when the usual multi-host environment variables are set."""
    env = os.environ
    if env.get("JAX_COORDINATOR_ADDRESS") and int(env.get("JAX_NUM_PROCESSES", "1")) > 1:
        jax.distributed.initialize()


def _without_empty(tree: Any) -> Any:
    """``tree`` with its zero-size arrays as None: orbax cannot save them (MJX's ``Data`` has
    some, e.g. ``act`` of a scene without actuator state); ``_with_empty`` puts them back."""
    return jax.tree.map(lambda x: None if x.size == 0 else x, tree)


def _with_empty(restored: Any, abstract: Any) -> Any:
    """The restored tree with the zero-size arrays of ``abstract`` rebuilt (zeros, its sharding)."""
    leaves, treedef = jax.tree.flatten(abstract)
    kept = iter(jax.tree.leaves(restored))
    full = [
        jax.device_put(jnp.zeros(a.shape, a.dtype), a.sharding) if a.size == 0 else next(kept)
        for a in leaves
    ]
    if next(kept, None) is not None:
        raise ValueError("the checkpoint holds more arrays than this run's state")
    return treedef.unflatten(full)


def seed_mesh(num_seeds: int) -> Mesh:
    """A 1-D mesh over as many devices as divide the number of seeds."""
    devices = jax.devices()
    n = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    return Mesh(np.array(devices[:n]), ("seed",))


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Seed i's key is ``fold_in(PRNGKey(seed), i)``: the same whatever the number of seeds."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds))


@dataclass
class RunResult:
    run_dir: Path
    state: Any
    steps: int
    complete: bool
    dead_seeds: list[int] = field(default_factory=list)
    wall_time: float = 0.0


class Runner:
    """Train ``cfg.seeds`` seeds of one experiment at once (``vmap`` over seeds)."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool | None = None,
        max_chunks: int | None = None,
        read_only: bool = False,
    ) -> None:
        """``read_only``: open an existing run folder without checking or writing its
        ``config.yaml`` (``diagnose_checkpoint``); ``run`` is not meant for such a runner."""
        self.cfg = cfg
        default_dir = Path(cfg.out_dir) / cfg.name / f"{cfg.net.arch}-{cfg.seeds}seeds"
        self.run_dir = Path(run_dir) if run_dir else default_dir
        self.resume = resume
        self.progress = sys.stdout.isatty() if progress is None else progress
        self.max_chunks = max_chunks  # stop early (tests, smoke runs); resumable later
        self.trainer: Trainer = build_trainer(cfg)
        self.mesh = seed_mesh(cfg.seeds)
        self.sharding = NamedSharding(self.mesh, PartitionSpec("seed"))
        if not read_only:
            self._prepare_dir()

    # ------------------------------------------------------------ run folder
    def _prepare_dir(self) -> None:
        d = self.run_dir
        cfg_file = d / "config.yaml"
        if cfg_file.exists():
            saved = config_from_dict(yaml.safe_load(cfg_file.read_text()))
            diff = config_diff(saved, self.cfg, ignore=_RESUMABLE)
            if diff:
                lines = "\n".join(f"  {k}: saved {a!r}, now {b!r}" for k, a, b in diff)
                raise ConfigError(
                    f"{d} holds a run of another config; differing fields:\n{lines}\n"
                    "Use another --run-dir (or delete that folder)."
                )
            if not self.resume and not (d / "summary.json").exists():
                raise ConfigError(
                    f"{d} holds an unfinished run of this config: pass --resume to continue it, "
                    "or choose another --run-dir"
                )
        d.mkdir(parents=True, exist_ok=True)
        cfg_file.write_text(dump_config(self.cfg))

    @property
    def complete(self) -> bool:
        return (self.run_dir / "summary.json").exists()

    # ------------------------------------------------------------- compiled
    def _compiled(self) -> tuple[Any, Any]:
        """``init`` and ``chunk``: the trainer's ``train_chunk``, ``evaluate`` and ``diagnose``
        vmapped over seeds, jitted as separate programs and called in turn by ``chunk``."""
        t = self.trainer
        options = t.compiler_options  # e.g. MJX's CPU fusion setting (envs.metaworld)
        seeds = self.sharding
        init = jax.jit(jax.vmap(t.init), out_shardings=seeds, compiler_options=options)
        train = jax.jit(
            jax.vmap(t.train_chunk),
            in_shardings=(seeds,),
            out_shardings=seeds,
            donate_argnums=(0,),
            compiler_options=options,
        )
        evaluate = jax.jit(
            jax.vmap(t.evaluate),
            in_shardings=(seeds, seeds),
            out_shardings=seeds,
            compiler_options=options,
        )
        diagnose = jax.jit(
            jax.vmap(t.diagnose),
            in_shardings=(seeds,),
            out_shardings=seeds,
            compiler_options=options,
        )

        def chunk(state: Any) -> tuple[Any, dict[str, Any]]:
            state, metrics = train(state)
            out = {"train": metrics, "eval": evaluate(state.params, state.key)}
            if t.diagnostics:
                out["diag"] = diagnose(state)
            return state, out

        return init, chunk

    def _checkpointer(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
        return ocp.CheckpointManager(
            (self.run_dir / "checkpoints").resolve(),
            options=options,
            item_names=("state", "meta"),
        )

    def _abstract(self, init: Any, keys: jax.Array) -> Any:
        shapes = jax.eval_shape(init, keys)
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.sharding), shapes
        )

    def _restore_latest(self, mngr: ocp.CheckpointManager, init: Any, keys: jax.Array) -> tuple:
        """``(state, meta)`` of the newest checkpoint, laid out like ``init(keys)``."""
        abstract = self._abstract(init, keys)
        restored = mngr.restore(
            mngr.latest_step(),
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_without_empty(abstract)),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return _with_empty(restored["state"], abstract), restored["meta"]

    # -------------------------------------------------------------- logging
    def _rows(self, step: int, out: dict[str, Any], dead: set[int]) -> tuple[list, list]:
        """CSV rows of one chunk (host arrays with a leading seed axis)."""
        train, ev = out["train"], out["eval"]
        tasks = self.trainer.task_names
        eps = train["episodes"].sum(axis=1)  # [S, T]
        with np.errstate(invalid="ignore", divide="ignore"):
            tr_ret = np.where(eps > 0, train["return_sum"].sum(axis=1) / eps, np.nan)
            tr_score = np.where(eps > 0, train["score_sum"].sum(axis=1) / eps, np.nan)
        metric_rows, train_rows = [], []
        scalars = [
            k for k, v in train.items() if v.ndim == 2 and k not in ("finite",)
        ]  # [S, K] per-update scalars
        for s in range(self.cfg.seeds):
            if s in dead:
                continue
            for t, name in enumerate(tasks):
                metric_rows.append(
                    {
                        "step": step,
                        "seed": s,
                        "task": name,
                        "eval_return": float(ev["return"][s, t]),
                        "eval_score": float(ev["score"][s, t]),
                        "eval_success": float(ev["success"][s, t]),
                        "train_return": float(tr_ret[s, t]),
                        "train_score": float(tr_score[s, t]),
                        "train_episodes": float(eps[s, t]),
                    }
                )
            row = {"step": step, "seed": s}
            for k in scalars:
                if k.endswith("sparsity"):  # PPO's sparsity; SAC's actor_/critic_sparsity too
                    row[k] = float(train[k][s, -1])
                elif k in _SUMMED:
                    row[k] = float(np.sum(train[k][s]))
                else:  # NaN-free updates only (SAC's losses are NaN during the warm-up)
                    values = train[k][s]
                    finite = ~np.isnan(values)
                    row[k] = float(np.mean(values[finite])) if finite.any() else math.nan
            train_rows.append(row)
        return metric_rows, train_rows

    def _diag_rows(self, step: int, out: dict[str, Any], dead: set[int]) -> list[dict]:
        """Rows of ``diagnostics.csv``: plasticity metrics per seed at this evaluation."""
        diag = out.get("diag")
        if diag is None:
            return []
        return [
            {"step": step, "seed": s, **{k: float(v[s]) for k, v in diag.items()}}
            for s in range(self.cfg.seeds)
            if s not in dead
        ]

    def _append(self, name: str, rows: list[dict]) -> None:
        if not rows:
            return
        path = self.run_dir / name
        new = pd.DataFrame(rows)
        if path.exists():
            with path.open() as f:
                header = f.readline().rstrip("\n").split(",")
            if header != list(new.columns):
                # Columns changed (a run resumed by a newer version that logs more, or a row
                # without some metric): rewrite the file with the union of the columns, in
                # the file's order, rather than append rows that misalign with its header.
                old = pd.read_csv(path)
                pd.concat([old, new], ignore_index=True).to_csv(path, index=False)
                return
        new.to_csv(path, mode="a", header=not path.exists(), index=False)

    def _truncate_logs(self, step: int) -> None:
        for name in ("metrics.csv", "train.csv", "diagnostics.csv"):
            path = self.run_dir / name
            if path.exists():
                df = pd.read_csv(path)
                df[df["step"] <= step].to_csv(path, index=False)

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        cfg, t = self.cfg, self.trainer
        if self.complete:
            print(f"{self.run_dir}: already complete, nothing to do")
        init, chunk = self._compiled()
        keys = jax.device_put(seed_keys(cfg.seed, cfg.seeds), self.sharding)
        mngr = self._checkpointer()
        start_chunk, dead, wall_before = 0, set(), 0.0
        if mngr.latest_step() is not None:
            if not self.resume and not self.complete:
                raise ConfigError(f"{self.run_dir} has checkpoints: pass --resume")
            state, meta = self._restore_latest(mngr, init, keys)
            start_chunk, dead = int(meta["chunk"]), set(meta["dead_seeds"])
            wall_before = float(meta.get("wall_time_s", 0.0))
            self._truncate_logs(start_chunk * t.updates_per_chunk * t.steps_per_update)
            print(f"resumed {self.run_dir} at step {meta['step']} (chunk {start_chunk})")
        else:
            self._truncate_logs(-1)
            state = init(keys)
        steps_per_chunk = t.updates_per_chunk * t.steps_per_update
        per_step = t.transitions_per_step or len(t.task_names)
        transitions_per_chunk = steps_per_chunk * per_step * cfg.seeds
        ckpt_every = cfg.train.checkpoint_every // cfg.train.eval_every
        end_chunk = t.num_chunks
        if self.max_chunks is not None:
            end_chunk = min(end_chunk, start_chunk + self.max_chunks)
        t0 = time.time()
        bar = _Progress(self.progress, t.num_chunks, start_chunk, cfg.name)
        for c in range(start_chunk, end_chunk):
            tc = time.time()
            state, out = chunk(state)
            out = jax.device_get(out)
            dt = time.time() - tc
            step = (c + 1) * steps_per_chunk
            finite = np.asarray(out["train"]["finite"]).all(axis=1)
            newly = [s for s in np.flatnonzero(~finite).tolist() if s not in dead]
            if newly:
                msg = f"seed(s) {newly} produced NaN/inf during the chunk ending at step {step}"
                if cfg.on_nonfinite == "stop":
                    mngr.wait_until_finished()
                    bar.close()
                    raise DivergedError(
                        msg + f"; stopped, the last good checkpoint is kept in "
                        f"{self.run_dir / 'checkpoints'}"
                    )
                print(msg + "; dropping them and going on", file=sys.stderr)
                dead.update(newly)
            metric_rows, train_rows = self._rows(step, out, dead)
            self._append("metrics.csv", metric_rows)
            self._append("train.csv", train_rows)
            self._append("diagnostics.csv", self._diag_rows(step, out, dead))
            live = [s for s in range(cfg.seeds) if s not in dead]
            score = float(np.mean(out["eval"]["score"][live])) if live else math.nan
            bar.update(c + 1, step, transitions_per_chunk / dt, score)
            if (c + 1) % ckpt_every == 0 or c + 1 == end_chunk:
                meta = {
                    "chunk": c + 1,
                    "step": step,
                    "dead_seeds": sorted(dead),
                    "wall_time_s": wall_before + time.time() - t0,
                }
                mngr.save(
                    c + 1,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(_without_empty(state)),
                        meta=ocp.args.JsonSave(meta),
                    ),
                )
        mngr.wait_until_finished()
        mngr.close()
        bar.close()
        wall = wall_before + time.time() - t0
        complete = end_chunk == t.num_chunks
        final_step = end_chunk * steps_per_chunk
        if complete and end_chunk > start_chunk:
            self._finish(final_step, wall, dead)
        return RunResult(self.run_dir, state, final_step, complete, sorted(dead), wall)

    def _finish(self, step: int, wall: float, dead: set[int]) -> None:
        from jaxsparse.run.aggregate import iqm_ci, score_matrix
        from jaxsparse.run.plots import plot_run

        plot_run(self.run_dir, title=self.cfg.name)
        scores, tasks = score_matrix(self.run_dir)
        iqm, lo, hi = iqm_ci(scores)
        summary = {
            "name": self.cfg.name,
            "final_step": step,
            "seeds": self.cfg.seeds,
            "dead_seeds": sorted(dead),
            "tasks": tasks,
            "final_eval_score_iqm": iqm,
            "final_eval_score_ci95": [lo, hi],
            "final_eval_score_mean_per_task": dict(
                zip(tasks, np.mean(scores, axis=0).tolist(), strict=True)
            ),
            "wall_time_s": wall,  # summed over interrupted and resumed sessions
            "device": jax.devices()[0].device_kind,
            "num_devices": len(jax.devices()),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        print(
            f"done: final normalised score IQM {iqm:.3f} [{lo:.3f}, {hi:.3f}] over "
            f"{self.cfg.seeds - len(dead)} seeds; results in {self.run_dir}"
        )


class _Progress:
    """A rich progress bar on a terminal, one plain line per chunk otherwise."""

    def __init__(self, enabled: bool, total: int, done: int, name: str) -> None:
        self.total, self.name, self.bar = total, name, None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} chunks"),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )
            self.bar.start()
            self.task = self.bar.add_task(name, total=total, completed=done, info="compiling")

    def update(self, chunk: int, step: int, rate: float, score: float) -> None:
        info = f"step {step:,}  {rate:,.0f} env steps/s  eval score {score:.3f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=chunk, info=info)
        else:
            print(f"[{self.name}] chunk {chunk}/{self.total}  {info}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def diagnose_checkpoint(run_dir: str | Path, tau: float | None = None) -> pd.DataFrame:
    """The plasticity diagnostics (``diagnostics.csv``'s columns) of a run's newest checkpoint,
    one row per live seed, measured again on the observations the checkpoint holds, with the
    run's diagnostics key: the same values the run logged at that step when the code and
    ``tau`` are the same. Use it for metrics added after the run, or another dormancy
    threshold ``tau``. The run folder is only read."""
    run_dir = Path(run_dir)
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.exists():
        raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)")
    if not (run_dir / "checkpoints").is_dir():
        raise ConfigError(f"{run_dir} has no checkpoint")
    data = yaml.safe_load(cfg_file.read_text())
    if tau is not None:
        data.setdefault("plasticity", {})["tau"] = tau
    cfg = config_from_dict(data)
    runner = Runner(cfg, run_dir=run_dir, read_only=True, progress=False)
    t = runner.trainer
    if not t.diagnostics:
        raise ConfigError(
            f"{run_dir}: the run has no diagnostics (plasticity.diagnostics is off, or its "
            "algorithm and environment have none)"
        )
    mngr = runner._checkpointer()
    if mngr.latest_step() is None:
        raise ConfigError(f"{run_dir} has no checkpoint")
    init = jax.jit(jax.vmap(t.init), out_shardings=runner.sharding)
    keys = jax.device_put(seed_keys(cfg.seed, cfg.seeds), runner.sharding)
    state, meta = runner._restore_latest(mngr, init, keys)
    mngr.close()
    diag = jax.device_get(jax.jit(jax.vmap(t.diagnose))(state))
    rows = runner._diag_rows(int(meta["step"]), {"diag": diag}, set(meta["dead_seeds"]))
    return pd.DataFrame(rows)
