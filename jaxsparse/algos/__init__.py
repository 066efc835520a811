"""On-policy RL algorithm pieces (PPO losses, GAE), pure and jittable."""

from jaxsparse.algos.ppo_losses import (
    categorical_log_prob_and_entropy,
    gae,
    ppo_policy_loss,
    value_loss,
)

__all__ = ["categorical_log_prob_and_entropy", "gae", "ppo_policy_loss", "value_loss"]
