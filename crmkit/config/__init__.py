"""Settings: ``crmkit.toml`` sections, their defaults and their rules."""
