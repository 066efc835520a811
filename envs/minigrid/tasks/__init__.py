"""The seven MiniGrid tasks, one module per family, each exposing a `TaskSpec`."""
