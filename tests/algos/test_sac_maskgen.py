"""The mask generator inside multi-task SAC: trajectory segments cut from the replay buffer are
consecutive steps of one environment, the generators get gradients from the SAC losses through
the straight-through top-k (and only from their own network's loss), a vmapped update runs the
similarity phases on schedule and keeps exact neuron counts, evaluation masks are
deterministic, and bad settings fail before anything compiles."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pendulum_sac import pendulum_last3_returns

from jaxsparse.algos.maskgen import MaskGenConfig, replay_segments
from jaxsparse.algos.replay import replay_add, replay_init
from jaxsparse.algos.sac import SAC, SACConfig
from jaxsparse.algos.sac_envs import ContinuousGymnaxVecEnv
from jaxsparse.nets.maskgen import active_neurons
from jaxsparse.plasticity.interventions import PlasticityConfig


def test_replay_segments_are_consecutive_steps_of_one_environment():
    T, k, C, steps = 2, 3, 20, 11  # C not a multiple of k; 33 rows per task into 20: wraps
    state = replay_init({"obs": jnp.zeros(2)}, T, C)
    for s in range(steps):  # obs = (step, env) of every task's environment
        obs = np.stack([[s, 100 * t + j] for t in range(T) for j in range(k)]).astype(np.float32)
        state = replay_add(state, {"obs": jnp.asarray(obs)})
    seg = np.asarray(
        replay_segments(state, jax.random.PRNGKey(0), per_task=64, length=4, envs_per_task=k)["obs"]
    )
    assert seg.shape == (T, 64, 4, 2)
    intact = int(state.size) // k  # the newest 6 steps of each environment are intact
    for t in range(T):
        for m in range(64):
            step, env = seg[t, m, :, 0], seg[t, m, :, 1]
            np.testing.assert_array_equal(np.diff(step), 1.0)  # consecutive, oldest first
            assert len(set(env)) == 1 and 100 * t <= env[0] < 100 * t + k  # one env of task t
            assert step[0] >= steps - intact and step[-1] <= steps - 1
    starts = set(seg[:, :, 0, 0].ravel().tolist())
    assert starts == set(range(steps - intact, steps - 3))  # every valid start is drawn


def _sac(num_tasks=2, ratio=0.5, every=5, diagnostics=False, **cfg):
    env = ContinuousGymnaxVecEnv("Pendulum-v1", 2 * num_tasks, num_tasks=num_tasks)
    base = dict(
        steps_per_update=20,
        batch_size=8 * num_tasks,
        buffer_size=200 * num_tasks,
        warmup_steps=10,
        actor_hidden=(16, 12),
        critic_hidden=(16, 12),
    )
    base.update(cfg)
    mg = MaskGenConfig(
        ratio=ratio,
        every=every,
        hidden=(32,),
        sim_states=16,
        segments_per_task=4,
        segment_length=5,
        vae_hidden=32,
        vae_latent=4,
    )
    pl = PlasticityConfig(diagnostics=diagnostics, batch=16)
    return SAC(SACConfig(**base), env, maskgen=mg, plasticity=pl)


def test_generators_get_gradients_through_the_straight_through_masks():
    sac = _sac()
    state = jax.jit(sac.init)(jax.random.PRNGKey(0))
    p = state.params
    B = 16
    rng = np.random.default_rng(0)
    batch = {
        "obs": jnp.asarray(rng.normal(size=(B, 3)), jnp.float32),
        "action": jnp.asarray(rng.uniform(-1, 1, (B, 1)), jnp.float32),
        "reward": jnp.asarray(rng.normal(size=B), jnp.float32),
        "next_obs": jnp.asarray(rng.normal(size=(B, 3)), jnp.float32),
        "terminated": jnp.zeros(B, bool),
    }
    noise = jnp.asarray(rng.normal(size=(B, 1)), jnp.float32)
    key = jax.random.PRNGKey(1)
    gen = p["mask_gen"]

    def critic_loss(g):
        return sac.critic_loss(
            p["critic"], p["actor"], p["critic"], p["log_alpha"], batch, noise, g, key
        )[0]

    def actor_loss(g):
        return sac.actor_loss(p["actor"], p["critic"], p["log_alpha"], batch, noise, g, key)[0]

    g_c, g_a = jax.grad(critic_loss)(gen), jax.grad(actor_loss)(gen)

    def norm(tree):
        return float(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))

    assert norm(g_c["critic"]) > 0 and norm(g_a["actor"]) > 0
    for name in ("net0_layer0", "net0_layer1"):  # every layer's head of the generators
        assert norm(g_a["actor"][name]) > 0 and norm(g_c["critic"][name]) > 0
    assert norm(g_c["critic"]["net1_layer0"]) > 0  # the second critic's masks too
    # Each loss trains only its own network's generator (the other side's masks are fixed).
    assert norm(g_c["actor"]) == 0.0 and norm(g_a["critic"]) == 0.0


def test_vmapped_update_runs_similarity_phases_and_keeps_exact_neuron_counts():
    sac = _sac(diagnostics=True)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state0 = jax.jit(jax.vmap(sac.init))(keys)
    state, m = jax.jit(jax.vmap(sac.update))(state0)
    # 20 suite steps, 10 of warm-up: gradient steps 1..10, similarity phases after 5 and 10.
    np.testing.assert_array_equal(m["train_steps"], [10, 10])
    np.testing.assert_array_equal(m["mask_phases"], [2, 2])
    assert np.all(m["finite"])
    for k in ("vae_loss", "mask_sim_loss", "critic_loss", "actor_loss"):
        assert np.all(np.isfinite(m[k])), k
    for name in ("mask_gen", "vae"):  # both trained (the SAC losses; the similarity phase)
        moved = [
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(
                jax.tree.leaves(state.params[name]),
                jax.tree.leaves(state0.params[name]),
                strict=True,
            )
        ]
        assert max(moved) > 0, name
    # Exact counts of the generated masks, per layer and sample, for both seeds.
    obs = state.obs[0]
    task = jnp.asarray(sac.env.task_ids)
    gen0 = jax.tree.map(lambda x: x[0], state.params["mask_gen"])
    for key in (None, jax.random.PRNGKey(3)):
        actor = sac.maskgen.masks(gen0, "actor", obs, task, key)
        critics = sac.maskgen.masks(gen0, "critic", obs, task, key)
        for masks, widths in ((actor, (16, 12)), (critics[0], (16, 12)), (critics[1], (16, 12))):
            for mask, w in zip(masks, widths, strict=True):
                m_np = np.asarray(mask)
                assert set(np.unique(m_np)) <= {0.0, 1.0}
                np.testing.assert_array_equal(m_np.sum(-1), active_neurons(0.5, w))
    # Evaluation masks are deterministic: the same policy, the same returns.
    ev = jax.jit(jax.vmap(sac.evaluate))
    a, b = ev(state.params, keys), ev(state.params, keys)
    np.testing.assert_array_equal(a["return"], b["return"])
    # Diagnostics: similarity matrices in [0, 1], each task's neurons per layer in [k, width].
    d = jax.jit(jax.vmap(sac.diagnose))(state, keys)
    for name in ("actor_mask_sim/0-1", "critic_mask_sim/0-1", "policy_sim/0-1"):
        assert np.all((d[name] >= 0) & (d[name] <= 1 + 1e-6)), name
    for t in range(2):
        for layer, w in enumerate((16, 12)):
            for name in ("actor", "critic"):
                used = np.asarray(d[f"{name}_active_{layer}/{t}"])
                assert np.all((used >= active_neurons(0.5, w)) & (used <= w)), name


def test_maskgen_settings_fail_before_compiling():
    with pytest.raises(ValueError, match=r"maskgen\.ratio"):
        MaskGenConfig(ratio=1.0)
    with pytest.raises(ValueError, match=r"maskgen\.every"):
        MaskGenConfig(every=0)
    with pytest.raises(ValueError, match="arch 'mtmhsac'"):
        _sac(arch="mooresac", actor_hidden=(16, 16), critic_hidden=(16, 16))
    with pytest.raises(ValueError, match="warmup_steps"):
        _sac(warmup_steps=3)
    with pytest.raises(ValueError, match="no neuron"):
        _sac(ratio=0.97)


@pytest.mark.slow
@pytest.mark.extended
def test_sac_with_the_mask_generator_learns_pendulum():
    """As ``test_sac_learns_pendulum`` (two tasks of Pendulum-v1 copies, two seeds, 2x64
    networks, 15k suite steps), with the generator masking half of every hidden layer (32 of 64
    neurons per sample) and a similarity phase every 1000 gradient steps. The mean greedy return
    over both seeds, both tasks and the last three evaluations must exceed -250 (random: about
    -1200). Measured by hand: -127 to -175 from update 7 on (about 4.5 min on 2 cores); run
    apart (``make test-extended``)."""
    returns = pendulum_last3_returns(MaskGenConfig(ratio=0.5, every=1000))
    assert float(np.mean(returns)) > -250, returns
