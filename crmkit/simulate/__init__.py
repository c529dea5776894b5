"""The simulator: synthetic transaction histories with ground truth, and campaign responses.

It serves the demo and the tests; it is not the world, and every learner is also tested on
data it did not make.
"""
