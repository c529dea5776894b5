"""Segmentations of the feature table: RFM scores, value tiers, k-means clusters.

Inputs and outputs are polars frames (the feature table); see :mod:`crmkit.segments.estimators`.
"""
