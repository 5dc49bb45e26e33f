"""Pruning: gates on heads and MLPs, importance scores, structured and magnitude pruning, survivors across seeds."""
