"""Defaults and choices the CLI needs without importing Optuna or Ray."""

DEFAULT_STORAGE = "sqlite:///runs/archsearch.db"
# The recipe `run` and `fidelity` use unless told otherwise (`train` trains with lm_brief).
DEFAULT_EVALUATOR = "lm_brief_synflow"
SAMPLERS = ("tpe", "nsga2", "random", "grid")
DEFAULT_SAMPLER = "tpe"
# ASHA ranks candidates on the quality alone, which stops the small models of the front's cheap
# end in a multi-objective search (see schedulers.py): off unless asked for.
SCHEDULERS = ("none", "asha")
DEFAULT_SCHEDULER = "none"
