"""The training loop, its optimizers and schedules, checkpoints and logs."""
