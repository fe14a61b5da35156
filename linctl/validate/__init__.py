"""`linctl validate`: pre-flight checks of a config (schema, data, a traced training step)."""
