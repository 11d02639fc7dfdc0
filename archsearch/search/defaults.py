"""Defaults and choices the CLI needs without importing Optuna or Ray."""

DEFAULT_STORAGE = "sqlite:///runs/archsearch.db"
# What `run` searches unless told otherwise: the mission's per-layer family space, scored by a
# weight-sharing supernet, whose front's finalists are then trained with DEFAULT_EVALUATOR.
DEFAULT_SPACE = "oneshot_lm"
DEFAULT_RUN_EVALUATOR = "supernet_brief"
# The training recipe: the one `fidelity` measures and the supernet's finalists are trained
# with (`train` trains with lm_brief).
DEFAULT_EVALUATOR = "lm_brief_synflow"
DEFAULT_TRIALS = 24  # trained candidates of a training search (a supernet recipe names its own)
SAMPLERS = ("tpe", "nsga2", "random", "grid")
DEFAULT_SAMPLER = "tpe"
# A supernet search scores hundreds of candidates in a fraction of a second each; multivariate
# TPE's own cost grows with the trials and came to dominate (500 candidates: 6.5 min with TPE,
# 280 of its proposals already scored; 2.1 min with NSGA-II).
SUPERNET_SAMPLER = "nsga2"
# ASHA ranks candidates on the quality alone, which stops the small models of the front's cheap
# end in a multi-objective search (see schedulers.py): off unless asked for.
SCHEDULERS = ("none", "asha")
DEFAULT_SCHEDULER = "none"
