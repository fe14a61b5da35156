"""Typed configuration: pydantic schemas and YAML loading with overrides."""
