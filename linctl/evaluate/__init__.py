"""`linctl eval`: metrics and predictions of trained checkpoints."""
