"""MOORE-SAC (``mooresac``) and Soft Modularization (``softmod``) SAC networks: shapes, parameter
paths and the dropped task-id columns, log-std clipping, the jitted forward against a plain
NumPy transcription of the official forward passes, orthonormal MOORE experts, softmax routing,
task isolation, and (through the experiment config) a few vmapped SAC updates on Pendulum with
GMP on the actor only, and the plasticity diagnostics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from jaxsparse.nets.encoders import gram_schmidt
from jaxsparse.nets.multitask import flatten_intermediates
from jaxsparse.nets.sac import DEFAULT_HIDDEN, SAC_ARCHS, SACNetworks
from jaxsparse.nets.sac_archs import SoftModSpec
from jaxsparse.run.build import build_trainer, task_layer_filter
from jaxsparse.run.config import (
    PPO_ARCHS,
    SAC_DEFAULT_HIDDEN,
    ConfigError,
    config_from_dict,
    experiment_path,
    load_experiment,
)
from jaxsparse.run.config import SAC_ARCHS as CONFIG_SAC_ARCHS
from jaxsparse.sparsity import get_sparse_state
from jaxsparse.sparsity.masks import default_filter

NEW_ARCHS = ("mooresac", "softmod")
T, A, STATE = 3, 2, 5  # tasks, action dims, state dims (the obs also carries a T-dim one-hot)
B = 2 * T  # task-major: two samples per task
TASK = np.repeat(np.arange(T, dtype=np.int32), B // T)
# Three layers of three modules exercise every routing piece (route_cond_{l} too).
SPEC = SoftModSpec(layers=3, modules=3, module_hidden=6, gating_hidden=5, gating_layers=2)


def _net(arch: str, **kw) -> SACNetworks:
    return SACNetworks(
        T, A, (8, 7), (8, 7), arch=arch, n_experts=3, softmod=SPEC, obs_task_dims=T, **kw
    )


def _obs(seed: int = 0) -> np.ndarray:
    state = np.random.default_rng(seed).normal(size=(B, STATE)).astype(np.float32)
    return np.concatenate([state, np.eye(T, dtype=np.float32)[TASK]], axis=1)


_CACHE: dict[str, tuple] = {}


def _setup(arch: str):
    """``(net, params, actor, critic)`` once per arch: ``actor(params, obs, task, task_major)``
    and ``critic(params, obs, action, task, task_major)`` jitted (compiled once per shape)."""
    if arch not in _CACHE:
        net = _net(arch)
        # Shapes from the real init, values drawn here: compiling the init's many PRNG calls
        # costs seconds of CPU (the SAC tests below run the real init).
        shapes = jax.eval_shape(net.init, jax.random.PRNGKey(1), _obs(), TASK)
        rng = np.random.default_rng(2)
        params = jax.tree.map(
            lambda x: jnp.asarray(rng.normal(0.0, 0.5, x.shape), jnp.float32), shapes
        )
        actor = jax.jit(net.actor, static_argnums=3)
        critic = jax.jit(net.critic, static_argnums=4)
        _CACHE[arch] = (net, params, actor, critic)
    return _CACHE[arch]


def _paths(tree) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in p): np.asarray(x)
        for p, x in flat
    }


def _set(tree, path: str, fn):
    """A copy of ``tree`` with ``fn`` applied to the leaf at ``path`` ("a/b/kernel")."""
    keys = path.split("/")
    out = jax.tree.map(lambda x: x, tree)
    node = out
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = fn(np.array(node[keys[-1]]))
    return out


# --------------------------------------------------------------- NumPy references (float64)
def _np_dense(p, x):
    return x @ np.float64(p["kernel"]) + np.float64(p["bias"])


def _np_moore(p, x, task, n_experts):
    """networks_sac.py's forward: experts, OrthogonalLayer1D (no eps), tanh(w @ basis), heads."""
    experts = []
    for k in range(n_experts):
        e, h, i = p["encoder"][f"expert_{k}"], x, 0
        while f"Dense_{i}" in e:
            h = _np_dense(e[f"Dense_{i}"], h)
            if f"Dense_{i + 1}" in e:
                h = np.maximum(h, 0.0)
            i += 1
        experts.append(h)
    basis = [experts[0] / np.linalg.norm(experts[0], axis=1, keepdims=True)]
    for v in experts[1:]:
        w = v - sum(np.sum(v * b, axis=1, keepdims=True) * b for b in basis)
        basis.append(w / np.linalg.norm(w, axis=1, keepdims=True))
    weights = np.eye(T)[task] @ np.float64(p["encoder"]["task_weights"]["kernel"])
    features = np.tanh(np.einsum("bk,kbd->bd", weights, np.stack(basis)))
    kernel, bias = np.float64(p["head"]["kernel"]), np.float64(p["head"]["bias"])
    return np.einsum("bi,bio->bo", features, kernel[task]) + bias[task]


def _np_softmod(p, x, task, spec):
    """ModularGatedCascadeCondNet.forward (cond_ob, no batch norm, post-softmax conditioning)."""
    relu, n = (lambda z: np.maximum(z, 0.0)), spec.modules

    def softmax(z):
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    out, i = x, 0
    while f"base_{i + 1}" in p:
        out = relu(_np_dense(p[f"base_{i}"], out))
        i += 1
    out = _np_dense(p[f"base_{i}"], out)
    embedding = _np_dense(p["task_embedding"], np.eye(T)[task]) * out
    out = relu(out)
    embedding = relu(embedding)
    for g in range(spec.gating_layers - 1):
        embedding = relu(_np_dense(p[f"gating_{g}"], embedding))
    embedding = _np_dense(p[f"gating_{spec.gating_layers - 1}"], embedding)
    raw = _np_dense(p["route_0"], relu(embedding)).reshape(-1, n, n)
    weights = [softmax(raw)]
    for layer in range(1, spec.layers - 1):
        cond = np.concatenate([w.reshape(-1, n * n) for w in weights], axis=-1)
        cond = relu(_np_dense(p[f"route_cond_{layer}"], cond) * embedding)
        weights.append(softmax(_np_dense(p[f"route_{layer}"], cond).reshape(-1, n, n)))
    cond = np.concatenate([w.reshape(-1, n * n) for w in weights], axis=-1)
    cond = relu(_np_dense(p["route_cond_last"], cond) * embedding)
    last_weight = softmax(_np_dense(p["route_last"], cond))

    def module(layer, j, x):
        m = p[f"modules_{layer}"]
        return x @ np.float64(m["kernel"][j]) + np.float64(m["bias"][j])

    module_outputs = [module(0, j, out) for j in range(n)]
    for layer in range(spec.layers - 1):
        new = []
        for j in range(n):
            module_input = sum(
                module_outputs[k] * weights[layer][:, j, k : k + 1] for k in range(n)
            )
            new.append(module(layer + 1, j, relu(module_input)))
        module_outputs = new
    out = relu(sum(module_outputs[k] * last_weight[:, k : k + 1] for k in range(n)))
    return _np_dense(p["head"], out)


def _np_net(arch, p, x, task):
    return _np_moore(p, x, task, 3) if arch == "mooresac" else _np_softmod(p, x, task, SPEC)


# ------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_shapes_paths_and_task_columns_dropped(arch):
    _, params, actor, critic = _setup(arch)
    obs, task = jnp.asarray(_obs()), jnp.asarray(TASK)
    mean, log_std = actor(params["actor"], obs, task, True)
    q = critic(params["critic"], obs, jnp.zeros((B, A)), task, True)
    assert mean.shape == log_std.shape == (B, A) and q.shape == (B, 2)
    paths = _paths(params)
    assert all(p.startswith(("actor/", "critic/critic_0/", "critic/critic_1/")) for p in paths)
    # Every weight matrix is a prunable "kernel"; the rest are biases (per task: [T, out]).
    for p, x in paths.items():
        assert p.endswith(("/kernel", "/bias")), p
        assert default_filter(p, x) == p.endswith("/kernel"), p
    # The experts / base read the state without the one-hot task columns.
    first = "encoder/expert_0/Dense_0" if arch == "mooresac" else "base_0"
    assert paths[f"actor/{first}/kernel"].shape[0] == STATE
    assert paths[f"critic/critic_1/{first}/kernel"].shape[0] == STATE + A
    # The one-hot columns are ignored: scrambling them changes nothing.
    scrambled = obs.at[:, STATE:].set(7.0)
    np.testing.assert_array_equal(actor(params["actor"], scrambled, task, True)[0], mean)


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_log_std_is_clipped(arch):
    _, params, actor, _ = _setup(arch)
    obs, task = jnp.asarray(_obs()), jnp.asarray(TASK)
    for value, bound in ((1e4, 2.0), (-1e4, -20.0)):
        big = _set(params["actor"], "head/bias", lambda b, v=value: _fill(b, v))
        _, log_std = actor(big, obs, task, True)
        np.testing.assert_array_equal(np.asarray(log_std), bound)


def _fill(b: np.ndarray, value: float) -> np.ndarray:
    b = b.copy()
    b[..., A:] = value
    return b


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_jitted_forward_matches_numpy_reference(arch):
    _, params, actor, critic = _setup(arch)
    obs, task = _obs(3), TASK
    mean, log_std = actor(params["actor"], obs, task, True)
    ref = _np_net(arch, _np_tree(params["actor"]), np.float64(obs[:, :STATE]), task)
    np.testing.assert_allclose(np.asarray(mean), ref[:, :A], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(log_std), np.clip(ref[:, A:], -20, 2), rtol=1e-4, atol=1e-5
    )
    action = np.random.default_rng(4).uniform(-1, 1, (B, A))
    q = critic(params["critic"], obs, action.astype(np.float32), task, True)
    x = np.concatenate([np.float64(obs[:, :STATE]), action], axis=1)
    for i in range(2):
        ref_q = _np_net(arch, _np_tree(params["critic"][f"critic_{i}"]), x, task)[:, 0]
        np.testing.assert_allclose(np.asarray(q[:, i]), ref_q, rtol=1e-4, atol=1e-5)


def _np_tree(tree):
    return jax.tree.map(np.asarray, tree)


def test_moore_experts_are_orthonormal_per_sample():
    net, params, _, _ = _setup("mooresac")
    _, inter = net.actor(
        params["actor"], jnp.asarray(_obs(5)), jnp.asarray(TASK), mutable=["intermediates"]
    )
    acts = flatten_intermediates(inter)
    experts = jnp.stack([acts[f"encoder/expert_{k}/hidden_1"] for k in range(3)], axis=1)
    basis = gram_schmidt(experts)
    gram = np.asarray(jnp.einsum("bkd,bjd->bkj", basis, basis))
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(3), gram.shape), atol=1e-5)
    # The features the head reads are tanh(task weights @ that basis).
    w = np.asarray(params["actor"]["encoder"]["task_weights"]["kernel"])[TASK]
    ref = np.tanh(np.einsum("bk,bkd->bd", w, np.asarray(basis)))
    np.testing.assert_allclose(np.asarray(acts["features"]), ref, rtol=1e-5, atol=1e-6)


def test_softmod_routing_weights_are_distributions():
    net, params, _, _ = _setup("softmod")  # random parameters: far from uniform routing
    _, state = net.actor(
        params["actor"], jnp.asarray(_obs(6)), jnp.asarray(TASK), mutable=["routing"]
    )
    routing = {k: np.asarray(v[0]) for k, v in state["routing"].items()}
    assert sorted(routing) == ["last_weights", "weights_0", "weights_1"]  # L - 1 = 2 matrices
    for name, w in routing.items():
        assert w.shape == ((B, 3) if name == "last_weights" else (B, 3, 3)), name
        assert np.all(w >= 0.0), name
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-6)
    assert routing["weights_0"].std(axis=0).max() > 1e-2  # sample-dependent routing


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_task_layers_of_one_task_leave_the_others_unchanged(arch):
    """MOORE: task B's task weights and head; Soft Modularization: task B's embedding row (its
    output layer is shared by design). Task A's actor and critic outputs do not move."""
    _, params, actor, critic = _setup(arch)
    obs, task = jnp.asarray(_obs(7)), jnp.asarray(TASK)
    action = jnp.asarray(np.random.default_rng(8).uniform(-1, 1, (B, A)), jnp.float32)
    tb = 1
    task_paths = (
        ["encoder/task_weights/kernel", "head/kernel", "head/bias"]
        if arch == "mooresac"
        else ["task_embedding/kernel"]
    )

    def bump(x):
        x = x.copy()
        x[tb] += 0.5
        return x

    changed = params
    for p in task_paths:
        changed = _set(changed, f"actor/{p}", bump)
        for i in range(2):
            changed = _set(changed, f"critic/critic_{i}/{p}", bump)
    for task_major in (True, False):
        before = actor(params["actor"], obs, task, task_major)[0]
        after = actor(changed["actor"], obs, task, task_major)[0]
        q0 = critic(params["critic"], obs, action, task, task_major)
        q1 = critic(changed["critic"], obs, action, task, task_major)
        others = np.asarray(task) != tb
        np.testing.assert_array_equal(np.asarray(after)[others], np.asarray(before)[others])
        np.testing.assert_array_equal(np.asarray(q1)[others], np.asarray(q0)[others])
        assert not np.array_equal(np.asarray(after)[~others], np.asarray(before)[~others])


def test_arch_names_and_default_widths_agree_with_the_config():
    assert CONFIG_SAC_ARCHS == SAC_ARCHS and not set(SAC_ARCHS) & set(PPO_ARCHS)
    assert {k: tuple(v) for k, v in SAC_DEFAULT_HIDDEN.items()} == DEFAULT_HIDDEN
    with pytest.raises(ValueError, match="arch must be one of"):
        SACNetworks(2, 1, arch="moore")
    with pytest.raises(ValueError, match=r"actor_hidden\[-1\] \(2\) must be at least n_experts"):
        SACNetworks(2, 1, (2,), (8,), arch="mooresac", n_experts=4)
    with pytest.raises(ValueError, match=r"softmod\.layers"):
        SoftModSpec(layers=1)


def _pendulum(arch: str, *extra: str):
    """experiments/pendulum-sac.yaml shrunk: one hidden layer of 8, 40 suite steps (15 warm-up,
    25 gradient steps), GMP 90 % on the actor only, reached at gradient step 20. (Compiling the
    update costs time per parameter leaf, so the networks are as small as they go.)"""
    overrides = [
        f"net.arch={arch}",
        "sac.steps_per_update=10",
        "sac.batch_size=8",
        "sac.buffer_size=400",
        "sac.warmup_steps=15",
        "sac.actor_hidden=[8]",
        "sac.critic_hidden=[8]",
        "train.total_steps=40",
        "train.eval_every=10",
        "train.checkpoint_every=20",
        "env.eval_episodes_per_task=2",
        "plasticity.diagnostics=true",
        "plasticity.batch=8",
        "sparsity.modules={actor: {method: gmp, sparsity: 0.9, start: 0, end: 0.8, freq: 5}}",
        *extra,
    ]
    return load_experiment("pendulum-sac", overrides)


SMALL = {
    "mooresac": ("net.n_experts=2",),
    "softmod": (
        "net.softmod.module_hidden=8",
        "net.softmod.gating_hidden=8",
        "net.softmod.gating_layers=1",
    ),
}


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_pendulum_updates_vmapped_with_gmp_on_the_actor_only(arch):
    cfg = _pendulum(arch, *SMALL[arch])
    sac = build_trainer(cfg).algo.sac
    assert sac.net.arch == arch and sac.net.obs_task_dims == 0
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    init, update = jax.jit(jax.vmap(sac.init)), jax.jit(jax.vmap(sac.update))
    state = init(keys)
    for _ in range(4):
        state, metrics = update(state)
    assert np.all(np.asarray(metrics["finite"]))
    for k in ("critic_loss", "actor_loss", "alpha_loss"):
        assert np.all(np.isfinite(np.asarray(metrics[k]))), k
    assert np.all(np.asarray(state.grad_steps) == 25)
    prunable = task_layer_filter(False)
    for s in range(2):
        seed = jax.tree.map(lambda x, s=s: x[s], state)
        actor = _paths(seed.params["actor"])
        kernels = {p: w for p, w in actor.items() if p.endswith("/kernel")}
        pruned = {p: w for p, w in kernels.items() if prunable(f"actor/{p}", w)}
        assert len(pruned) == len(kernels) - 1  # all but the task weights / embedding
        for p, w in pruned.items():
            assert np.count_nonzero(w) == round(0.1 * w.size), p
        for p, w in kernels.items():
            if p not in pruned:
                assert np.count_nonzero(w) == w.size, p
        for p, w in _paths((seed.params["critic"], seed.target_critic)).items():
            assert np.count_nonzero(w) == w.size, p
        masks = get_sparse_state(seed.opt_state["critic"]).masks
        assert all(m is None for m in jax.tree.leaves(masks, is_leaf=lambda x: x is None))
    # The plasticity diagnostics run on the new networks.
    diag = jax.jit(sac.diagnose)(jax.tree.map(lambda x: x[0], state), jax.random.PRNGKey(1))
    for k in ("dormant", "actor_dormant", "critic_dormant", "fisher_trace"):
        assert np.isfinite(float(diag[k])) and float(diag[k]) >= 0.0, k
    assert 1 <= int(diag["actor_erank"]) <= 8 and int(diag["critic_erank"]) >= 1
    assert float(diag["fisher_trace"]) > 0.0


def test_config_errors_name_the_field_and_the_choices():
    with pytest.raises(ConfigError, match=r"net\.arch 'mooresac' does not fit algo 'ppo'.*'mtppo'"):
        load_experiment("cartpole-ppo", ["net.arch=mooresac"])
    with pytest.raises(ConfigError, match=r"net\.arch 'moore' does not fit algo 'sac'.*'softmod'"):
        load_experiment("pendulum-sac", ["net.arch=moore"])
    with pytest.raises(ConfigError, match=r"net\.arch: Input should be .*'softmod'"):
        load_experiment("pendulum-sac", ["net.arch=soft"])
    with pytest.raises(ConfigError, match=r"net\.softmod: not used by algo 'sac' with net\.arch"):
        load_experiment("pendulum-sac", ["net.softmod.layers=4"])
    with pytest.raises(ConfigError, match=r"net\.n_experts: not used .* 'softmod'.*net\.softmod"):
        load_experiment("pendulum-sac", ["net.arch=softmod", "net.n_experts=3"])
    with pytest.raises(ConfigError, match=r"net\.softmod: only for net\.arch 'softmod'"):
        load_experiment("cartpole-ppo", ["net.softmod.modules=3"])
    with pytest.raises(ConfigError, match=r"net\.softmod\.layers: Input should be greater"):
        load_experiment("pendulum-sac", ["net.arch=softmod", "net.softmod.layers=1"])
    with pytest.raises(ConfigError, match=r"sac\.critic_hidden\[-1\] \(3\) must be at least net\."):
        load_experiment("pendulum-sac", ["net.arch=mooresac", "sac.critic_hidden=[16,3]"])
    # A sparsity.modules key of mtmhsac's layers fails when the trainer is built (shapes only).
    modules = "sparsity.modules={critic/critic_0/Dense_0: {method: dense}}"
    cfg = load_experiment("pendulum-sac", ["net.arch=softmod", modules])
    with pytest.raises(
        ConfigError, match=r"net\.arch 'softmod': plan key 'critic/critic_0/Dense_0"
    ):
        build_trainer(cfg)
    # Widths left out take the arch's defaults; given ones stay.
    data = yaml.safe_load(experiment_path("pendulum-sac").read_text())
    data["name"] = "pendulum-sac"
    del data["sac"]["actor_hidden"]
    for arch, widths in (("softmod", [400, 400]), ("mooresac", [400, 400, 400])):
        data["net"]["arch"] = arch
        cfg = config_from_dict(data)
        assert cfg.sac.actor_hidden == widths and cfg.sac.critic_hidden == [64, 64]
