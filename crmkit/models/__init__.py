"""Models: churn, uplift and CLV, their design matrices, registry and scoring."""
