"""Customer features as of a date: one polars pipeline over the store."""
