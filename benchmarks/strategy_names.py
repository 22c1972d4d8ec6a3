"""The strategies `bench search` compares by default (names only: the command line imports this)."""

# GP is left out of the default comparison: it takes seconds per trial (measure it with gp+none).
SAMPLERS = ("random", "tpe", "nsga2", "ehvi")
STOPPERS = ("none", "dominance", "mo_asha", "promote")
DEFAULT_STRATEGIES = tuple(f"{sampler}+{stopper}" for sampler in SAMPLERS for stopper in STOPPERS)
