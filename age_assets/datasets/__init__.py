"""Plain dataset readers: each turns a dataset on disk into a manifest table (no Dagster here)."""
