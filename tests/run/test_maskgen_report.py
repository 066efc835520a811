"""The mask generator's logs in a run folder: the similarity matrices are read back from the
upper-triangle columns of diagnostics.csv (mean over seeds, mirrored, unit diagonal), the
figures are written and the plasticity figure leaves those columns out; the report labels a
mask-generator run by its ratio; the config refuses bad settings with the field's name."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxsparse.run.config import ConfigError, load_experiment
from jaxsparse.run.plots import is_maskgen_column, plot_run, similarity_matrices
from jaxsparse.run.report import derive_labels

TASKS = ("reach-v3", "push-v3", "pick-place-v3")


def _write(run_dir: Path) -> pd.DataFrame:
    run_dir.mkdir(parents=True)
    rows, diag = [], []
    for step in (1000, 2000, 3000):
        for seed in range(2):
            for task in TASKS:
                rows.append({"step": step, "seed": seed, "task": task, "eval_score": 0.5})
            d = {"step": step, "seed": seed, "dormant": 0.1, "fisher_trace": 1.0}
            for kind in ("actor_mask", "critic_mask", "policy"):
                for i in range(3):
                    for j in range(i + 1, 3):
                        d[f"{kind}_sim/{i}-{j}"] = (step / 3000) * (i + j) / 3 + 0.1 * seed
            for net in ("actor", "critic"):
                for layer in range(3):
                    for t in range(3):
                        d[f"{net}_active_{layer}/{t}"] = 80 + 10 * t + seed
            diag.append(d)
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)
    frame = pd.DataFrame(diag)
    frame.to_csv(run_dir / "diagnostics.csv", index=False)
    return frame


def test_similarity_matrices_read_back_by_hand(tmp_path: Path) -> None:
    frame = _write(tmp_path / "run")
    steps, mats = similarity_matrices(frame, "policy")
    np.testing.assert_array_equal(steps, [1000, 2000, 3000])
    assert mats.shape == (3, 3, 3)
    # step 3000: pair (i, j) is (i + j) / 3 + 0.1 * seed, mean over seeds 0 and 1: + 0.05
    expected = np.array([[1, 1 / 3, 2 / 3], [1 / 3, 1, 1], [2 / 3, 1, 1]]) + 0.05
    np.fill_diagonal(expected, 1.0)
    np.testing.assert_allclose(mats[-1], expected, atol=1e-12)
    assert (
        similarity_matrices(frame.drop(columns=[c for c in frame if "_sim/" in c]), "policy")
        is None
    )


def test_plot_run_writes_the_mask_figures(tmp_path: Path) -> None:
    _write(tmp_path / "run")
    names = {p.name for p in plot_run(tmp_path / "run")}
    assert {"mask_similarity.png", "active_neurons.png", "plasticity.png"} <= names
    for name in ("mask_similarity.png", "active_neurons.png"):
        assert (tmp_path / "run" / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert is_maskgen_column("policy_sim/0-1") and is_maskgen_column("critic_active_2/9")
    assert not is_maskgen_column("dormant/encoder/conv_0")  # PPO's per-layer columns stay


def test_report_labels_a_maskgen_run_by_its_ratio() -> None:
    config = {
        "name": "mt10-maskgen",
        "env": {"kind": "metaworld", "suite": "MT10"},
        "net": {"arch": "mtmhsac"},
        "maskgen": {"enabled": True, "ratio": 0.5},
    }
    assert derive_labels(config) == ("mtmhsac", "MT10", "maskgen-0.5")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["maskgen.ratio=1.0"], "maskgen.ratio"),
        (["maskgen.ratio=0.999"], r"maskgen.ratio, sac.actor_hidden: ratio 0.999 leaves no neuron"),
        (["net.arch=softmod"], "mtmhsac"),
        (["maskgen.enabled=false", "maskgen.ratio=0.5"], "maskgen.enabled is false"),
        (["sac.warmup_steps=5"], "maskgen.segment_length"),
        (["maskgen.every=0"], "maskgen.every"),
        (["maskgen.typo=1"], "unknown key"),
    ],
)
def test_config_refuses_bad_maskgen_settings(overrides, match) -> None:
    suite = "env.suite=[reach-v3]"
    with pytest.raises(ConfigError, match=match):
        load_experiment("mt10-maskgen", [suite, *overrides])


def test_maskgen_experiment_loads() -> None:
    cfg = load_experiment("mt10-maskgen", ["env.suite=[reach-v3,push-v3]", "maskgen.ratio=0.5"])
    assert cfg.maskgen.enabled and cfg.maskgen.ratio == 0.5 and cfg.net.arch == "mtmhsac"
    with pytest.raises(ConfigError, match="algo 'sac'"):
        load_experiment("mt3-gmp", ["maskgen.enabled=true"])
