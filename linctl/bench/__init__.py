"""`linctl bench`: time and memory of attention variants and whole models against sequence length."""
