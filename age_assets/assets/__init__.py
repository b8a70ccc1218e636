"""Thin Dagster wrappers: config in, a call into ``datasets``/``ml``, metadata out."""
