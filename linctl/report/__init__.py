"""`linctl report`: the results of training runs and benchmarks as one Markdown page with plots."""
