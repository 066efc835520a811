"""SAC through the runner on tiny Pendulum configs: logs and checkpoints, a stopped run resumed
to the end matches an uninterrupted one bit for bit (parameters and replay buffer), GMP on the
actor only through ``sparsity.modules``, the gradient-step schedule conversion, and the config
checks of ``algo: sac``."""

from __future__ import annotations

import json

import jax
import numpy as np
import pandas as pd
import pytest

from jaxsparse.run.build import build_plan, build_trainer, sac_gradient_steps
from jaxsparse.run.config import ConfigError, config_from_dict, load_experiment
from jaxsparse.run.runner import Runner
from jaxsparse.sparsity import GMP, Dense, get_sparse_state

# One Pendulum task, 2 environments, 16 suite steps per update (one update per chunk), 4 chunks;
# 24 steps of warm-up, so 40 gradient steps; 8x8 networks.
TINY = {
    "name": "tiny-sac",
    "algo": "sac",
    "seeds": 2,
    "env": {
        "kind": "gymnax",
        "suite": "Pendulum-v1",
        "num_envs_per_task": 2,
        "eval_episodes_per_task": 2,
        "best_return": -150.0,
        "random_return": -1220.0,
    },
    "net": {"arch": "mtmhsac"},
    "sac": {
        "steps_per_update": 16,
        "batch_size": 8,
        "buffer_size": 200,
        "warmup_steps": 24,
        "actor_hidden": [8, 8],
        "critic_hidden": [8, 8],
    },
    "train": {"total_steps": 64, "eval_every": 16, "checkpoint_every": 32},
}


def tiny(**sections) -> dict:
    cfg = json.loads(json.dumps(TINY))
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


def _flat(tree) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def test_sac_runs_logs_checkpoints_and_resumes_bit_for_bit(tmp_path):
    cfg = config_from_dict(tiny())
    full = Runner(cfg, run_dir=tmp_path / "full", progress=False).run()
    assert full.complete and full.steps == 64
    d = tmp_path / "full"
    metrics = pd.read_csv(d / "metrics.csv")
    train = pd.read_csv(d / "train.csv")
    assert sorted(metrics["step"].unique()) == [16, 32, 48, 64]
    assert len(metrics) == 4 * 2 and set(metrics["task"]) == {"Pendulum-v1"}
    # Min-max score: (return - random) / (best - random), evaluation and training alike.
    np.testing.assert_allclose(
        metrics["eval_score"], (metrics["eval_return"] + 1220.0) / 1070.0, rtol=1e-5
    )
    done = metrics["train_episodes"] > 0
    np.testing.assert_allclose(
        metrics.loc[done, "train_score"],
        (metrics.loc[done, "train_return"] + 1220.0) / 1070.0,
        rtol=1e-5,
    )
    assert metrics["eval_return"].lt(0).all() and metrics["eval_score"].notna().all()
    for col in ("critic_loss", "actor_loss", "alpha_loss", "alpha_mean", "sparsity", "entropy"):
        assert col in train.columns, col
    # Chunk 1 is all warm-up (no gradient step, NaN losses); chunk 2 has 8 gradient steps.
    first, later = train[train["step"] == 16], train[train["step"] > 16]
    assert first["critic_loss"].isna().all() and (first["train_steps"] == 0).all()
    assert later["critic_loss"].notna().all()
    assert list(train.loc[train["step"] == 32, "train_steps"]) == [8, 8]
    assert sorted(int(p.name) for p in (d / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
    assert json.loads((d / "summary.json").read_text())["final_step"] == 64
    state = full.state
    assert np.all(np.asarray(state.grad_steps) == 40) and np.all(np.asarray(state.env_steps) == 64)
    assert np.all(np.asarray(state.buffer.size) == 128)  # 64 suite steps x 2 envs, no wrap

    # Stopped after one chunk (checkpoint at chunk 1), then resumed to the end.
    part = tmp_path / "part"
    first = Runner(cfg, run_dir=part, progress=False, max_chunks=1).run()
    assert not first.complete and first.steps == 16
    resumed = Runner(cfg, run_dir=part, resume=True, progress=False).run()
    assert resumed.complete
    a, b = _flat(full.state), _flat(resumed.state)
    assert a.keys() == b.keys()
    assert any("buffer" in k for k in a) and any("params" in k for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for name in ("metrics.csv", "train.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(d / name), pd.read_csv(part / name))


def test_gmp_on_the_actor_only_through_the_config(tmp_path):
    gmp = {"method": "gmp", "sparsity": 0.8, "start": 0.0, "end": 0.5, "freq": 4}
    cfg = config_from_dict(
        tiny(sparsity={"modules": {"actor": gmp}}, plasticity={"diagnostics": True, "batch": 8})
    )
    # 40 gradient steps: start 0, end round(0.5 x 40) = 20, a prune every 4 gradient steps.
    assert sac_gradient_steps(cfg) == 40
    plan = build_plan(cfg)
    assert plan["actor"] == GMP(sparsity=0.8, start=0, end=20, freq=4)
    assert isinstance(plan["*"], Dense)
    state = Runner(cfg, run_dir=tmp_path / "run", progress=False).run().state
    actor = get_sparse_state(state.opt_state["actor"])
    critic_masks = get_sparse_state(state.opt_state["critic"]).masks
    assert all(m is None for m in jax.tree.leaves(critic_masks, is_leaf=lambda x: x is None))
    finals = jax.tree.leaves(actor.final_counts["actor"])
    kernels = {k: w for k, w in _flat(state.params["actor"]).items() if "kernel" in k}
    assert len(finals) == len(kernels) == 3
    for seed in range(2):
        for (name, w), final in zip(kernels.items(), finals, strict=True):
            assert int(final[seed]) == round(0.2 * w[seed].size), name  # uniform per layer
            assert np.count_nonzero(w[seed]) == int(final[seed]), name
        for name, w in _flat((state.params["critic"], state.target_critic)).items():
            if "kernel" in name:
                assert np.count_nonzero(w[seed]) == w[seed].size, name
    train = pd.read_csv(tmp_path / "run" / "train.csv")
    final = train[train["step"] == 64]
    np.testing.assert_allclose(final["critic_sparsity"], 0.0)
    assert np.all(np.abs(final["actor_sparsity"] - 0.8) < 0.01)
    assert np.all((final["sparsity"] > 0.0) & (final["sparsity"] < 0.8))
    # Diagnostics of actor and critics at every evaluation (tests/algos/test_sac.py checks the
    # numbers against a plain reference).
    diag = pd.read_csv(tmp_path / "run" / "diagnostics.csv")
    assert sorted(diag["step"].unique()) == [16, 32, 48, 64] and len(diag) == 8
    for col in ("dormant", "actor_dormant", "critic_dormant", "actor_erank", "fisher_trace"):
        assert diag[col].notna().all(), col
    assert diag[["dormant", "actor_dormant", "critic_dormant"]].stack().between(0, 1).all()
    assert (diag["actor_erank"] >= 1).all() and (diag["actor_erank"] <= 8).all()
    assert (diag["fisher_trace"] > 0).all()


def test_sac_schedule_converts_fractions_of_gradient_steps():
    cfg = config_from_dict(
        tiny(
            sac={"warmup_steps": 14, "steps_per_update": 10},
            train={"total_steps": 1000, "eval_every": 100, "checkpoint_every": 100},
            sparsity={"method": "gmp", "sparsity": 0.9, "start": 0.1, "end": 0.6, "freq": 30},
        )
    )
    # 986 gradient steps: start round(98.6) = 99, end round(591.6) = 592, freq 30 grad steps.
    assert build_plan(cfg) == GMP(sparsity=0.9, start=99, end=592, freq=30)
    defaults = config_from_dict(tiny(sparsity={"method": "gmp", "sparsity": 0.9}))
    # GMP's default window is 5% to 80% of the 40 gradient steps.
    assert build_plan(defaults) == GMP(sparsity=0.9, start=2, end=32, freq=500)
    trainer = build_trainer(cfg)
    assert (trainer.updates_per_chunk, trainer.num_chunks, trainer.steps_per_update) == (10, 10, 10)
    assert trainer.transitions_per_step == 2 and not trainer.diagnostics


def test_sac_config_errors():
    with pytest.raises(ConfigError, match=r"net\.arch 'mtppo' does not fit algo 'sac'.*'mtmhsac'"):
        config_from_dict(tiny(net={"arch": "mtppo"}))
    with pytest.raises(ConfigError, match=r"net\.arch 'mtmhsac' does not fit algo 'ppo'"):
        load_experiment("cartpole-ppo", ["net.arch=mtmhsac"])
    for field in ("redo_every", "reset_every"):
        with pytest.raises(ConfigError, match=rf"plasticity\.{field}: .*interventions are for"):
            config_from_dict(tiny(plasticity={field: 1000}))
    # The default (None) resolves to off on gymnax (on for Meta-World); explicit values hold.
    assert not config_from_dict(tiny()).diagnostics
    assert config_from_dict(tiny(plasticity={"diagnostics": True})).diagnostics
    with pytest.raises(ConfigError, match=r"ppo\.\* settings are for algo 'ppo'"):
        config_from_dict(tiny(ppo={"lr": 1e-4}))
    with pytest.raises(ConfigError, match=r"sac\.\* settings are for algo 'sac'"):
        load_experiment("cartpole-ppo", ["sac.batch_size=64"])
    with pytest.raises(ConfigError, match=r"net\.hidden: not used by algo 'sac'"):
        config_from_dict(tiny(net={"hidden": 32}))
    with pytest.raises(ConfigError, match=r"needs env\.kind 'metaworld' .* or env\.kind 'gymnax'"):
        config_from_dict(tiny(env={"kind": "minigrid", "suite": "MT3"}))
    with pytest.raises(ConfigError, match=r"needs env\.best_return"):
        config_from_dict(tiny(env={"best_return": None}))
    with pytest.raises(ConfigError, match=r"best_return \(-1300.0\) must be greater than random"):
        config_from_dict(tiny(env={"best_return": -1300.0}))
    with pytest.raises(ConfigError, match=r"warmup_steps \(64\) must be less than"):
        config_from_dict(tiny(sac={"warmup_steps": 64}))
    with pytest.raises(ConfigError, match=r"multiple of the steps per update sac\.steps_per_upd"):
        config_from_dict(tiny(train={"eval_every": 24}))
    with pytest.raises(ConfigError, match=r"sac\.actor_hidden: List should have at least 1"):
        config_from_dict(tiny(sac={"actor_hidden": []}))


def test_metaworld_config_checks():
    """The MT10 experiments validate before anything compiles: MT10 names, ported tasks only,
    success-rate scoring (no best/random return), fixed goals for Meta-World only."""
    from envs.metaworld import PORTED_TASKS

    ported = list(PORTED_TASKS)
    for name in ("mt10-dense", "mt10-gmp", "mt10-gmp-ac", "mt10-set", "mt10-rigl", "mt10-mst"):
        cfg = load_experiment(name, [f"env.suite=[{','.join(ported)}]"])
        assert (cfg.algo, cfg.env.kind, cfg.env.fixed_goals, cfg.seeds) == (
            "sac",
            "metaworld",
            50,
            10,
        )
        # The MT10 protocol: 2M suite steps of 10 environments = 20M environment steps.
        assert (cfg.train.total_steps, cfg.sac.warmup_steps, cfg.sac.batch_size) == (
            2_000_000,
            4_000,
            1280,
        )
        if len(ported) < 10:  # "MT10" names the unported tasks, and says which are ported
            with pytest.raises(ConfigError, match=r"not ported to MJX yet.*ported: \['reach-v3'"):
                load_experiment(name)
    gmp = load_experiment("mt10-gmp", ["env.suite=reach-v3"])
    assert gmp.sparsity.method == "dense" and set(gmp.sparsity.modules) == {"actor"}
    assert build_plan(gmp)["actor"] == GMP(
        sparsity=0.95, start=99_800, end=1_596_800, freq=5000
    )  # 5% and 80% of the 1,996,000 gradient steps
    mw = {"kind": "metaworld", "suite": ["reach-v3"], "best_return": None, "random_return": None}
    with pytest.raises(ConfigError, match=r"unknown Meta-World task\(s\) \['reach-v2'\]"):
        config_from_dict(tiny(env={**mw, "suite": ["reach-v2"]}))
    with pytest.raises(ConfigError, match=r"names a task more than once"):
        config_from_dict(tiny(env={**mw, "suite": ["reach-v3", "reach-v3"]}))
    with pytest.raises(ConfigError, match=r"env\.best_return: not used with env\.kind 'metaw"):
        config_from_dict(tiny(env={**mw, "best_return": 10.0}))
    with pytest.raises(ConfigError, match=r"env\.fixed_goals is for env\.kind 'metaworld'"):
        config_from_dict(tiny(env={"fixed_goals": 1}))
    with pytest.raises(ConfigError, match=r"env\.kind 'metaworld' is for algo 'sac'"):
        load_experiment("cartpole-ppo", ["env.kind=metaworld", "env.suite=reach-v3"])
    with pytest.raises(ConfigError, match=r"fixed_goals: Input should be greater than or equal"):
        config_from_dict(tiny(env={**mw, "fixed_goals": -1}))
    assert config_from_dict(tiny(env=mw)).env.suite == ["reach-v3"]


def test_pendulum_experiment_builds():
    cfg = load_experiment("pendulum-sac")
    assert cfg.algo == "sac" and cfg.steps_per_update == cfg.sac.steps_per_update
    trainer = build_trainer(cfg)
    assert trainer.num_chunks * trainer.updates_per_chunk * 1000 == cfg.train.total_steps
    assert trainer.algo.score(np.float32(-150.0)) == 1.0
    assert trainer.algo.score(np.float32(-1220.0)) == 0.0
