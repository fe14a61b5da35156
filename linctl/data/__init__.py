"""Data preparation: raw corpora to text part files, vocabularies and Arrow shards."""
