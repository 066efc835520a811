"""One module per Meta-World task: its ranges, reset, observation of objects, reward and success."""
