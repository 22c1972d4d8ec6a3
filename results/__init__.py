"""Leaderboards, Pareto fronts and committed benchmark baselines."""
