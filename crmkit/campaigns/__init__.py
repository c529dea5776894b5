"""Campaigns: daily lists, the ledger, opt-outs, evaluation and the uplift policy."""
