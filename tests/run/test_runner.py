"""The runner end to end on tiny configs: sparsity inside training, checkpoints, resume after
SIGKILL, vmap over seeds vs one seed alone, sharding over 4 fake CPU devices, the NaN guard."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import yaml

from jaxsparse.run.build import build_trainer
from jaxsparse.run.config import ConfigError, config_from_dict, dump_config, load_experiment
from jaxsparse.run.runner import DivergedError, Runner, diagnose_checkpoint, seed_keys
from jaxsparse.sparsity import get_sparse_state

ROOT = Path(__file__).resolve().parents[2]

# One MiniGrid task, 4 environments x 8 steps per update, 2 updates per chunk, 6 chunks.
TINY = {
    "name": "tiny",
    "seeds": 2,
    "env": {"suite": ["LavaGapS7"], "num_envs_per_task": 4, "eval_episodes_per_task": 2},
    "ppo": {
        "rollout_length": 8,
        "policy_epochs": 2,
        "policy_minibatch_per_task": 16,
        "critic_batch": 32,
    },
    "train": {"total_steps": 384, "eval_every": 64, "checkpoint_every": 64},
}


def tiny(**sections) -> dict:
    cfg = json.loads(json.dumps(TINY))
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


def masks_of(state):
    return get_sparse_state(state.opt_state).masks


def layer_masks(state, seed: int) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(masks_of(state))[0]
    return {jax.tree_util.keystr(p): np.asarray(m[seed]) for p, m in flat if m is not None}


def test_gmp_reaches_exact_target_sparsity_and_checkpoint_keeps_masks(tmp_path):
    cfg = config_from_dict(
        tiny(sparsity={"method": "gmp", "sparsity": 0.9, "start": 0.1, "end": 0.6, "freq": 32})
    )
    result = Runner(cfg, run_dir=tmp_path / "run", progress=False).run()
    assert result.complete
    state = result.state
    params = jax.tree_util.tree_flatten_with_path(state.params)[0]
    params = {jax.tree_util.keystr(p): np.asarray(x[0]) for p, x in params}
    masks = layer_masks(state, 0)
    # 3 convs and the two layers of the actor and critic heads; biases stay dense.
    assert len(masks) == 7 and all(k.endswith("['kernel']") for k in masks)
    for path, mask in masks.items():
        assert int(mask.sum()) == round(0.1 * mask.size), path  # uniform: round((1-s) n)
        assert np.all(params[path][~mask] == 0.0), path  # exact zeros where pruned
        assert np.count_nonzero(params[path]) == int(mask.sum()), path
    # Checkpoint round trip: a resumed (complete) runner restores exactly these masks.
    again = Runner(cfg, run_dir=tmp_path / "run", resume=True, progress=False).run()
    for a, b in zip(
        jax.tree.leaves(masks_of(state)), jax.tree.leaves(masks_of(again.state)), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    train = pd.read_csv(tmp_path / "run" / "train.csv")
    final = train[train["step"] == train["step"].max()]
    assert np.all(final["sparsity"] > 0.85)
    assert (tmp_path / "run" / "plots" / "eval_score.png").exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final_step"] == 384

    # Diagnostics measured again on the final checkpoint are the ones the run logged there,
    # with the pruned-away neurons counted apart (cut_*, dormant_live_*).
    diag = pd.read_csv(tmp_path / "run" / "diagnostics.csv")
    logged = diag[diag["step"] == 384].reset_index(drop=True)
    again = diagnose_checkpoint(tmp_path / "run")
    assert list(again.columns) == list(logged.columns)
    assert {"cut_actor", "dormant_live_actor", "cut_critic", "dormant_live_critic"} <= set(diag)
    np.testing.assert_allclose(again.to_numpy(), logged.to_numpy(), rtol=1e-5, atol=1e-7)
    assert (again["cut_actor"] > 0).all()  # conv_0 keeps 19 of its 192 weights for 16 filters
    everything = diagnose_checkpoint(tmp_path / "run", tau=1e9)  # every neuron is dormant
    assert (everything["dormant_actor"] == 1.0).all() and (
        everything["dormant_live_actor"] == 1.0
    ).all()
    assert (tmp_path / "run" / "config.yaml").read_text() == dump_config(cfg)  # only read


def test_set_keeps_sparsity_constant_while_rewiring(tmp_path):
    cfg = config_from_dict(tiny(sparsity={"method": "set", "sparsity": 0.9, "freq": 32}))
    trainer = build_trainer(cfg)
    keys = seed_keys(0, 2)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    before = layer_masks(state, 0)
    chunk = jax.jit(jax.vmap(trainer.chunk))
    for _ in range(2):
        state, _ = chunk(state)
        after = layer_masks(state, 0)
        for path in before:
            assert after[path].sum() == before[path].sum(), path
    changed = sum(int((before[p] != after[p]).sum()) for p in before)
    assert changed > 0  # connections were dropped and regrown


def test_vmap_over_seeds_matches_each_seed_alone():
    cfg = config_from_dict(tiny(sparsity={"method": "set", "sparsity": 0.8, "freq": 32}))
    trainer = build_trainer(cfg)
    keys = seed_keys(0, 2)
    both, out_both = jax.jit(jax.vmap(trainer.chunk))(jax.jit(jax.vmap(trainer.init))(keys))
    alone, out_alone = jax.jit(trainer.chunk)(jax.jit(trainer.init)(keys[1]))
    for a, b in zip(jax.tree.leaves(both.params), jax.tree.leaves(alone.params), strict=True):
        np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b), rtol=2e-5, atol=2e-6)
    for a, b in zip(jax.tree.leaves(masks_of(both)), jax.tree.leaves(masks_of(alone)), strict=True):
        np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b))
    np.testing.assert_allclose(out_both["eval"]["score"][1], out_alone["eval"]["score"], atol=1e-6)


def test_runner_programs_match_the_fused_chunk(tmp_path):
    """The runner compiles training, evaluation and diagnostics as three programs: the same
    states and logs as ``Trainer.chunk`` compiled as one (GMP masks, diagnostics on)."""
    cfg = config_from_dict(
        tiny(
            sparsity={"method": "gmp", "sparsity": 0.8, "start": 0.0, "end": 0.5, "freq": 32},
            plasticity={"diagnostics": True, "batch": 32},
            train={"total_steps": 128, "eval_every": 64, "checkpoint_every": 64},
        )
    )
    result = Runner(cfg, run_dir=tmp_path / "run", progress=False).run()
    trainer = build_trainer(cfg)
    state = jax.jit(jax.vmap(trainer.init))(seed_keys(cfg.seed, cfg.seeds))
    chunk = jax.jit(jax.vmap(trainer.chunk))
    outs = []
    for _ in range(2):
        state, out = chunk(state)
        outs.append(jax.device_get(out))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(result.state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    diag = pd.read_csv(tmp_path / "run" / "diagnostics.csv")
    for i, out in enumerate(outs):
        step = 64 * (i + 1)
        got = metrics[metrics.step == step].sort_values(["seed", "task"])
        np.testing.assert_allclose(got.eval_return, out["eval"]["return"].ravel(), rtol=1e-6)
        got = diag[diag.step == step].sort_values("seed")
        for key, value in out["diag"].items():
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-7, err_msg=key)


def _write_cfg(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(cfg_file: Path, run_dir: Path, *extra: str, env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jaxsparse", "train", str(cfg_file), "--run-dir", str(run_dir)]
    return subprocess.Popen(
        [*cmd, *extra],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _shared_cache(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI processes that share one compile cache in ``tmp_path``. JAX writes
    only programs that took at least 1 s to compile by default; a fast machine compiles the tiny
    test programs quicker than that (CI did), so the tests save every program."""
    return {
        "JAXSPARSE_COMPILE_CACHE": str(tmp_path / "xla"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }


def _final_arrays(run_dir: Path) -> dict[str, np.ndarray]:
    """Every array of the last checkpoint, read back with orbax (no template needed)."""
    import orbax.checkpoint as ocp

    mngr = ocp.CheckpointManager(run_dir.resolve() / "checkpoints", item_names=("state", "meta"))
    step = mngr.latest_step()
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    flat = jax.tree_util.tree_flatten_with_path(restored["state"])[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def _checkpoint_steps(run_dir: Path) -> list[int]:
    ckpt = run_dir / "checkpoints"
    if not ckpt.exists():
        return []
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())


# SET only (a dense run was the second case, ~2 min of CI): its masks, optimiser state and
# rewiring PRNG all have to survive the kill; a dense resume is the same path without masks.
@pytest.mark.parametrize("method", ["set"])
def test_resume_after_sigkill_is_bit_for_bit(tmp_path, method):
    sparsity = {"method": method} if method == "dense" else {"method": "set", "sparsity": 0.8}
    cfg = tiny(sparsity={**sparsity, "freq": 32})
    cfg["train"] = {"total_steps": 640, "eval_every": 64, "checkpoint_every": 64}
    cfg_file = _write_cfg(tmp_path / "cfg.yaml", cfg)
    # The three processes share a persistent compilation cache: the first compiles and saves,
    # the others load its programs (as a user's resumed run does) and must still agree exactly.
    cache = _shared_cache(tmp_path)

    full = _train(cfg_file, tmp_path / "full", env=cache)
    out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, out
    assert f"compile cache {tmp_path / 'xla'}: nothing loaded" in out
    assert any(p.name.startswith("jit_") for p in (tmp_path / "xla").iterdir())

    killed = _train(cfg_file, tmp_path / "killed", env=cache)
    deadline = time.time() + 600
    while len(_checkpoint_steps(tmp_path / "killed")) < 1 or not any(
        s >= 3 for s in _checkpoint_steps(tmp_path / "killed")
    ):
        assert killed.poll() is None, killed.communicate()[0]
        assert time.time() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert not (tmp_path / "killed" / "summary.json").exists()

    resumed = _train(cfg_file, tmp_path / "killed", "--resume", env=cache)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resumed" in out
    assert re.search(r"compile cache .*: [1-9]\d* program\(s\) loaded", out), out

    a, b = _final_arrays(tmp_path / "full"), _final_arrays(tmp_path / "killed")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for name in ("metrics.csv", "train.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "full" / name), pd.read_csv(tmp_path / "killed" / name)
        )


SHARD_SCRIPT = """
import sys, numpy as np, jax, yaml
from jaxsparse.run.config import config_from_dict
from jaxsparse.run.runner import Runner
cfg = config_from_dict(yaml.safe_load(open(sys.argv[1])))
runner = Runner(cfg, run_dir=sys.argv[2], progress=False)
res = runner.run()
leaves = jax.tree.leaves(res.state.params)
np.savez(sys.argv[3], *[np.asarray(x) for x in leaves], devices=runner.mesh.devices.size)
"""


# About 100 s of CI CPU: run apart (`make test-extended`) since the Meta-World drawer tests
# joined CI; vmap over seeds against each seed alone stays in CI (test above).
@pytest.mark.extended
def test_four_fake_devices_give_the_same_per_seed_results(tmp_path):
    cfg = tiny(seeds=4, sparsity={"method": "gmp", "sparsity": 0.8, "freq": 32})
    cfg["train"] = {"total_steps": 128, "eval_every": 64, "checkpoint_every": 128}
    cfg_file = _write_cfg(tmp_path / "cfg.yaml", cfg)
    results = {}
    for n in (1, 4):
        flags = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"
        proc = subprocess.run(
            [sys.executable, "-c", SHARD_SCRIPT, cfg_file, tmp_path / f"run{n}", tmp_path / f"{n}"],
            cwd=ROOT,
            env={**os.environ, "XLA_FLAGS": flags},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results[n] = np.load(tmp_path / f"{n}.npz")
    assert int(results[1]["devices"]) == 1 and int(results[4]["devices"]) == 4
    for k in (f for f in results[1].files if f != "devices"):
        np.testing.assert_allclose(results[1][k], results[4][k], rtol=2e-5, atol=2e-6, err_msg=k)


def test_nonfinite_seed_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = config_from_dict(tiny(ppo={"lr": 1e30}))
    runner = Runner(cfg, run_dir=tmp_path / "run", progress=False)
    with pytest.raises(DivergedError, match=r"seed\(s\) \[0, 1\] produced NaN/inf"):
        runner.run()
    assert not (tmp_path / "run" / "summary.json").exists()


def test_bad_config_fails_before_compiling_and_names_the_field():
    with pytest.raises(ConfigError, match=r"sparsity\.sparsity: Input should be less than 1"):
        load_experiment("mt3-gmp", ["sparsity.sparsity=1.5"])
    with pytest.raises(ConfigError, match=r"ppo\.lrr: unknown key; allowed: .*\blr\b"):
        load_experiment("mt3-gmp", ["ppo.lrr=1"])
    with pytest.raises(ConfigError, match=r"net\.arch: Input should be 'mtppo', 'moe', 'moore'"):
        load_experiment("mt3-gmp", ["net.arch=resnet"])
    with pytest.raises(ConfigError, match=r"unknown experiment .mt4-gmp.; known: .*mt3-gmp"):
        load_experiment("mt4-gmp")
    with pytest.raises(ConfigError, match=r"eval_every .* multiple of the steps per update"):
        load_experiment("mt3-gmp", ["train.eval_every=1000"])


def test_run_dir_of_another_config_is_refused(tmp_path):
    cfg = config_from_dict(tiny())
    (tmp_path / "run").mkdir()
    other = cfg.model_copy(update={"seed": 3})
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(other.model_dump()))
    with pytest.raises(ConfigError, match=r"another config; differing fields:\n  seed: saved 3"):
        Runner(cfg, run_dir=tmp_path / "run", progress=False)


def test_every_experiment_file_validates():
    names = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
    assert {f"mt{b}-{m}" for b in (3, 5, 7) for m in ("dense", "gmp", "set")} <= set(names)
    from envs.metaworld import PORTED_TASKS

    for name in names:
        if name.startswith("mt10-") and len(PORTED_TASKS) < 10:
            # `env.suite: MT10` waits for the port; the ported tasks validate.
            with pytest.raises(ConfigError, match="not ported to MJX yet"):
                load_experiment(name)
            load_experiment(name, [f"env.suite=[{','.join(PORTED_TASKS)}]"])
        else:
            load_experiment(name)


def test_chunk_compiles_once_with_a_weakly_typed_env_state():
    # gymnax CartPole's reset returns a weakly typed `time`; the state is made strongly typed at
    # init so that the second chunk reuses the first chunk's compilation.
    cfg = load_experiment(
        "cartpole-ppo",
        [
            "seeds=2",
            "env.num_envs_per_task=4",
            "ppo.rollout_length=8",
            "ppo.policy_minibatch_per_task=16",
            "ppo.critic_batch=32",
            "ppo.policy_epochs=1",
            "train.total_steps=64",
            "train.eval_every=32",
            "train.checkpoint_every=32",
        ],
    )
    trainer = build_trainer(cfg)
    chunk = jax.jit(jax.vmap(trainer.chunk))
    state = jax.jit(jax.vmap(trainer.init))(seed_keys(0, 2))
    for _ in range(2):
        state, _ = chunk(state)
    assert chunk._cache_size() == 1


def test_checkpoints_leave_out_and_rebuild_zero_size_arrays(tmp_path):
    """orbax refuses zero-size arrays (MJX's ``Data.act`` of a scene without actuator state):
    the runner saves without them and rebuilds them, with their shape, dtype and sharding."""
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    from jaxsparse.run.runner import _with_empty, _without_empty

    state = {"a": jnp.arange(6.0).reshape(2, 3), "act": jnp.zeros((2, 0)), "n": jnp.int32(3)}
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "ckpt", _without_empty(state))
        ckpt.wait_until_finished()
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
        )
        restored = _with_empty(ckpt.restore(tmp_path / "ckpt", _without_empty(abstract)), abstract)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for key, value in state.items():
        assert restored[key].shape == value.shape and restored[key].dtype == value.dtype, key
        np.testing.assert_array_equal(restored[key], value)
    with pytest.raises(ValueError, match="more arrays"):
        _with_empty({"x": jnp.ones(2), "y": jnp.ones(2)}, {"x": abstract["a"]})


def test_compile_cache_folder_defaults_and_switches(monkeypatch, tmp_path):
    from jaxsparse.cli import main
    from jaxsparse.run.compile_cache import default_cache_dir

    monkeypatch.delenv("JAXSPARSE_COMPILE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "jaxsparse" / "xla"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "jaxsparse" / "xla"
    monkeypatch.setenv("JAXSPARSE_COMPILE_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    for off in ("off", "0", "OFF"):
        monkeypatch.setenv("JAXSPARSE_COMPILE_CACHE", off)
        assert default_cache_dir() is None
    both = ["train", "mt3-gmp", "--compile-cache", str(tmp_path), "--no-compile-cache"]
    assert main(both) == 2


def test_sparsity_methods_share_the_evaluation_program_through_the_compile_cache(tmp_path):
    """The evaluation reads only the parameters and the key, so a GMP run loads the program a
    dense run of the same architecture and environments compiled."""
    cache = _shared_cache(tmp_path)
    outs = []
    for method in ({"method": "dense"}, {"method": "gmp", "sparsity": 0.9}):
        cfg = tiny(sparsity=method)
        cfg["train"] = {"total_steps": 64, "eval_every": 64, "checkpoint_every": 64}
        cfg_file = _write_cfg(tmp_path / f"{method['method']}.yaml", cfg)
        proc = _train(cfg_file, tmp_path / method["method"], env=cache)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        outs.append(out)
    assert "nothing loaded" in outs[0]
    assert re.search(r"compile cache .*: [1-9]\d* program\(s\) loaded", outs[1]), outs[1]


def test_log_rows_with_new_columns_keep_every_column_aligned(tmp_path):
    """A run resumed by a version that logs more diagnostics appends rows with extra columns:
    the file is rewritten with the union of the columns, the old rows' new cells empty."""
    from types import SimpleNamespace

    holder = SimpleNamespace(run_dir=tmp_path)
    Runner._append(holder, "diagnostics.csv", [{"step": 1, "seed": 0, "dormant_actor": 0.5}])
    Runner._append(holder, "diagnostics.csv", [{"step": 2, "seed": 0, "dormant_actor": 0.25}])
    Runner._append(
        holder,
        "diagnostics.csv",
        [{"step": 3, "seed": 0, "cut_actor": 0.125, "dormant_actor": 0.75}],
    )
    df = pd.read_csv(tmp_path / "diagnostics.csv")
    assert list(df.columns) == ["step", "seed", "dormant_actor", "cut_actor"]
    assert df["step"].tolist() == [1, 2, 3]
    assert df["dormant_actor"].tolist() == [0.5, 0.25, 0.75]
    assert np.isnan(df["cut_actor"][:2]).all() and df["cut_actor"][2] == 0.125
    Runner._append(holder, "diagnostics.csv", [{"step": 4, "seed": 0, "dormant_actor": 1.0}])
    df = pd.read_csv(tmp_path / "diagnostics.csv")
    assert df["dormant_actor"].tolist() == [0.5, 0.25, 0.75, 1.0]
    assert np.isnan(df["cut_actor"][3])


def test_diagnose_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    from jaxsparse.cli import main

    assert main(["diagnose", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path), "--tau", "-1"]) == 2
    assert "--tau must be >= 0" in capsys.readouterr().err
