"""Readers of raw corpora: files as their publishers lay them out, to articles and examples."""
