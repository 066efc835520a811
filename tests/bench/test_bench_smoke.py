"""`benchmarks/bench.py`: the tiniest mode runs end to end and writes a well-formed JSON; the
RESULTS.md block is regenerated from the recorded runs without touching the text around it; the
analytic FLOP count agrees with XLA's count of the same forward pass. No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("jaxsparse_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive_numbers(tree, path=""):
    """Every number in the figures is finite and >= 0 (mask-step difference may be < 0: noise)."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _positive_numbers(v, f"{path}/{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _positive_numbers(v, f"{path}/{i}")
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        yield path, tree


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--mode",
            "tiny",
            "--no-results-md",
            "--results-dir",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list(out.glob("bench-tiny-*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def test_tiny_mode_writes_a_well_formed_json(tiny_run: dict) -> None:
    r = tiny_run
    assert r["mode"] == "tiny"
    assert r["device"]["platform"] == "cpu" and r["device"]["name"].startswith("cpu: ")
    assert r["versions"]["jax"] == jax.__version__
    s = r["sections"]
    assert set(s) == {"env", "train", "flops", "profile", "baselines", "protocol"}  # no sac
    assert not [k for k, v in s.items() if "error" in v]
    for path, x in _positive_numbers(s):
        assert math.isfinite(x), path
        if "mask step" not in path:
            assert x >= 0, (path, x)

    env = s["env"]["minigrid"]
    assert [(e["suite"], e["envs_per_task"]) for e in env] == [("MT3", 1), ("MT3", 4)]
    assert all(e["steps_per_s"] > 0 and e["total_envs"] == 3 * e["envs_per_task"] for e in env)

    rows = s["train"]["rows"]
    assert [(x["method"], x["seeds"]) for x in rows] == [
        ("dense", 1),
        ("gmp", 1),
        ("dense+diagnostics", 1),
    ]
    for x in rows:
        # 2 envs x 8 steps per task, 3 tasks: env steps/s is consistent with s/update.
        assert x["env_steps_per_s"] == pytest.approx(16 * 3 / x["s_per_update"])
        assert x["env_steps_per_s_per_seed"] == pytest.approx(x["env_steps_per_s"])
    assert rows[0]["ratio_to_dense"] == 1.0
    assert "diagnose" in rows[2]["note"]

    f = s["flops"]
    assert f["breakdown"]["forward_per_sample"] == 904_704
    b = f["breakdown"]
    assert b["total"] == b["rollout"] + b["gae"] + b["critic_epochs"] + b["policy_epochs"]
    assert f["rows"][0]["fraction_of_matmul_peak"] > 0

    p = s["profile"]
    assert set(p["phases_s"]) and p["update_s"] > 0 and p["updates_per_evaluation"] == 1

    base = s["baselines"]
    assert set(base["minigrid_reference_env_steps_per_s"]) == {
        "LavaGapS7",
        "RedBlueDoors-6x6",
        "MemoryS11",
    }
    assert len(base["metaworld_reference_env_steps_per_s"]) == 10
    assert "skipped" in base["sb3"]

    proto = s["protocol"]
    assert proto["updates"] == 200 and proto["evaluations"] == 40  # the paper's MT3 protocol
    assert proto["projected_wall_s"] == pytest.approx(
        30 * (200 * proto["s_per_update"] + 40 * proto["s_per_evaluation"])
    )


def test_results_md_is_regenerated_from_recorded_runs(tiny_run: dict, tmp_path: Path) -> None:
    bench = _load_bench()
    results = tmp_path / "results"
    results.mkdir()
    md = tmp_path / "RESULTS.md"
    md.write_text("# Benchmark results\n\nHand-written intro.\n")
    quick = {**tiny_run, "mode": "quick"}
    (results / "bench-quick-cpu-1.json").write_text(json.dumps(quick))
    (results / "bench-tiny-cpu-2.json").write_text(json.dumps(tiny_run))  # tiny runs left out
    gpu = {**quick, "device": {**quick["device"], "name": "gpu: NVIDIA H200"}, "time": "2099"}
    (results / "bench-quick-gpu-3.json").write_text(json.dumps(gpu))

    bench.update_results_md(results, md)
    first = md.read_text()
    md.write_text(first + "\nHand-written tail.\n")
    bench.update_results_md(results, md)
    text = md.read_text()
    assert text == first + "\nHand-written tail.\n"  # idempotent, text around kept
    assert text.startswith("# Benchmark results\n\nHand-written intro.\n")
    assert text.count(bench.BEGIN) == 1 and text.count(bench.END) == 1
    assert "## Device: gpu: NVIDIA H200" in text and f"## Device: {quick['device']['name']}" in text
    assert text.count("`quick` mode") == 2 and "`tiny` mode" not in text
    for heading in ("**Environment only**", "**Training step**", "**FLOP rate**", "**Profile"):
        assert text.count(heading) == 2, heading
    assert "| dense+diagnostics | 1 |" in text


def test_analytic_flops_match_xla_cost_analysis() -> None:
    """The analytic model-FLOP count of an MTPPO forward pass (task-major batch, each sample's
    own head) against XLA's count of the compiled forward; XLA also counts biases and
    activations (about 1 %)."""
    from jaxsparse.nets.multitask import make_network

    bench = _load_bench()
    T, A, per_task = 3, 7, 64
    net = make_network("mtppo", T, A)
    obs = jnp.zeros((T * per_task, 7, 7, 3), jnp.uint8)
    task = jnp.repeat(jnp.arange(T, dtype=jnp.int32), per_task)
    params = net.init(jax.random.key(0), obs, task)
    compiled = (
        jax.jit(lambda p, o, t: net.apply(p, o, t, task_major=True)).lower(params, obs, task)
    ).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    analytic = bench.mtppo_forward_flops(T, A) * T * per_task
    assert analytic == pytest.approx(cost["flops"], rel=0.03)
    assert analytic < cost["flops"]
