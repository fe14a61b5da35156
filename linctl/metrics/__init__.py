"""Metrics as functions of predictions and labels or of loss sums: GLUE, perplexity."""
