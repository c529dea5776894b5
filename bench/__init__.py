"""Benchmarks: crmkit against plain polars, DuckDB and pandas in the same run."""
