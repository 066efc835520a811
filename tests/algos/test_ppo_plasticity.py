"""Plasticity diagnostics and interventions inside PPO training, on tiny MiniGrid configs:
they run under vmap over seeds (same per-seed result as alone), compose with sparse masks (a
recycled or reset weight never revives a pruned one), and follow their schedules."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jaxsparse.run.build import build_trainer
from jaxsparse.run.config import ConfigError, config_from_dict
from jaxsparse.run.runner import seed_keys
from jaxsparse.sparsity import get_sparse_state

# Two MiniGrid tasks, 4 environments x 8 steps per update, 3 updates per chunk.
TINY = {
    "name": "tiny-plasticity",
    "seeds": 2,
    "env": {
        "suite": ["LavaGapS7", "DistShift1"],
        "num_envs_per_task": 4,
        "eval_episodes_per_task": 2,
    },
    "ppo": {
        "rollout_length": 8,
        "policy_epochs": 2,
        "policy_minibatch_per_task": 16,
        "critic_batch": 32,
    },
    "plasticity": {"batch": 40},
    "train": {"total_steps": 192, "eval_every": 96, "checkpoint_every": 96},
}
GMP = {"method": "gmp", "sparsity": 0.8, "start": 0.0, "end": 0.5, "freq": 32}


def tiny(**sections) -> dict:
    cfg = json.loads(json.dumps(TINY))
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


def _run(cfg_dict, seeds_axis=True):
    trainer = build_trainer(config_from_dict(cfg_dict))
    keys = seed_keys(0, 2)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    chunk = jax.jit(jax.vmap(trainer.chunk))
    outs = []
    for _ in range(trainer.num_chunks):
        state, out = chunk(state)
        outs.append(jax.device_get(out))
    return trainer, keys, state, outs


def _assert_pruned_stay_zero(state):
    masks = get_sparse_state(state.opt_state).masks
    flat_m = jax.tree.leaves(masks, is_leaf=lambda x: x is None)
    n = 0
    for m, p in zip(flat_m, jax.tree.leaves(state.params), strict=True):
        if m is not None:
            assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)
            n += int((~np.asarray(m)).sum())
    assert n > 0


def test_diagnostics_are_logged_and_vmap_matches_each_seed_alone():
    cfg = tiny(plasticity={"diagnostics": True})
    trainer = build_trainer(config_from_dict(cfg))
    keys = seed_keys(0, 2)
    both_state, both = jax.jit(jax.vmap(trainer.chunk))(jax.jit(jax.vmap(trainer.init))(keys))
    _, alone = jax.jit(trainer.chunk)(jax.jit(trainer.init)(keys[1]))
    diag = both["diag"]
    assert {"dormant_actor", "dormant_critic", "erank", "fisher_trace"} <= set(diag)
    assert {"dormant/encoder/conv_0", "dormant/actor/hidden", "dormant/critic/hidden"} <= set(diag)
    for k, v in diag.items():
        assert v.shape == (2,), k
        if k.startswith("dormant"):
            assert np.all((v >= 0) & (v <= 1)), k
        np.testing.assert_allclose(v[1], alone["diag"][k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert np.all(diag["erank"] >= 1) and np.all(diag["erank"] <= 40)  # batch of 40 samples
    assert np.all(diag["fisher_trace"] > 0)
    # The recent batch is task-major: 20 samples of each task.
    task = np.asarray(both_state.recent_obs.task_id[0])
    np.testing.assert_array_equal(task, np.repeat([0, 1], 20))


def test_redo_with_gmp_recycles_and_never_revives_a_pruned_weight():
    # tau 0.5: many neurons count as dormant, so ReDo really recycles at every update.
    cfg = tiny(
        sparsity=GMP,
        plasticity={"diagnostics": False, "redo_every": 32, "redo_tau": 0.5},
    )
    trainer, keys, state, outs = _run(cfg)
    recycled = np.concatenate([o["train"]["recycled"] for o in outs], axis=1)  # [S, updates]
    assert recycled.shape == (2, 6) and np.all(recycled > 0)
    _assert_pruned_stay_zero(state)
    sp = outs[-1]["train"]["sparsity"][:, -1]
    np.testing.assert_allclose(sp, 0.8, atol=0.01)
    # vmap over seeds == the seed alone, with the interventions.
    alone = jax.jit(trainer.chunk)(jax.jit(trainer.init)(keys[1]))[0]
    first = jax.jit(jax.vmap(trainer.chunk))(jax.jit(jax.vmap(trainer.init))(keys))[0]
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(alone.params), strict=True):
        np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b), rtol=2e-5, atol=2e-6)


def test_redo_schedule_is_every_n_updates():
    cfg = tiny(plasticity={"diagnostics": False, "redo_every": 64, "redo_tau": 0.5})
    _, _, _, outs = _run(cfg)
    recycled = np.concatenate([o["train"]["recycled"] for o in outs], axis=1)
    assert np.all(recycled[:, [1, 3, 5]] > 0)  # updates 2, 4, 6 (every 64 steps = 2 updates)
    assert np.all(recycled[:, [0, 2, 4]] == 0)


def test_reset_fires_every_n_updates_at_most_k_times_and_keeps_masks():
    cfg = tiny(sparsity=GMP, plasticity={"diagnostics": False, "reset_every": 32, "reset_max": 2})
    _, _, state, outs = _run(cfg)
    reset = np.concatenate([o["train"]["reset"] for o in outs], axis=1)
    np.testing.assert_array_equal(reset, np.tile([1, 1, 0, 0, 0, 0], (2, 1)))
    _assert_pruned_stay_zero(state)


@pytest.mark.parametrize("surgery", ["pcgrad", "cagrad"])
def test_gradient_surgery_trains_with_gmp(surgery):
    cfg = tiny(sparsity=GMP, ppo={"surgery": surgery}, plasticity={"diagnostics": False})
    _, _, state, outs = _run(cfg)
    assert all(np.all(o["train"]["finite"]) for o in outs)
    _assert_pruned_stay_zero(state)
    assert np.all(outs[-1]["train"]["param_change"] > 0)


def test_plasticity_options_are_validated_before_compiling():
    with pytest.raises(ConfigError, match=r"plasticity\.redo_every"):
        config_from_dict(tiny(plasticity={"redo_every": -1}))
    cartpole = {
        "name": "c",
        "env": {"kind": "gymnax", "suite": "CartPole-v1", "best_return": 500},
        "net": {"arch": "mlp"},
        "ppo": {"surgery": "pcgrad"},
    }
    with pytest.raises(ConfigError, match=r"ppo\.surgery"):
        config_from_dict(cartpole)
    with pytest.raises(ConfigError, match="rigl"):
        config_from_dict(
            tiny(ppo={"surgery": "pcgrad"}, sparsity={"method": "rigl", "sparsity": 0.9})
        )


def test_surgery_and_fisher_with_single_task_heads_match_per_sample_heads(monkeypatch):
    """Gradient surgery's per-task blocks and the Fisher trace's single samples run each head
    with one task's kernel (``SINGLE_TASK``); a chunk agrees with the per-sample heads."""
    import jaxsparse.algos.ppo as ppo_module

    cfg = tiny(sparsity=GMP, ppo={"surgery": "pcgrad"})
    cfg["train"] = {"total_steps": 96, "eval_every": 96, "checkpoint_every": 96}
    fast = _run(cfg)
    monkeypatch.setattr(ppo_module, "SINGLE_TASK", False)  # the per-sample gather instead
    plain = _run(cfg)
    # Adam normalises each gradient entry: where one is ~0, float reassociation of the heads'
    # matmuls can flip its step (+-lr). So: every entry within a few steps' size, and all but a
    # handful of the 1M entries within 1e-4 (a wrong head would move most of them).
    a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(fast[2].params)])
    b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(plain[2].params)])
    assert np.max(np.abs(a - b)) < 1e-3
    assert np.mean(~np.isclose(a, b, rtol=1e-4, atol=1e-6)) < 1e-4
    diag_fast, diag_plain = fast[3][-1]["diag"], plain[3][-1]["diag"]
    assert set(diag_fast) == set(diag_plain)
    for k in diag_fast:
        np.testing.assert_allclose(diag_fast[k], diag_plain[k], rtol=1e-3, atol=1e-5, err_msg=k)
