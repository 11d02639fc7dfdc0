"""The names of what archsearch records on each Optuna trial, in one place.

Reports, exports, the dashboard and resumed searches read these user attributes back, so a
name written here is a stored format: rename one only with a migration. ``STATUS`` takes one of
the statuses below.
"""

from __future__ import annotations

# ---- user attributes of a trial --------------------------------------------------------------

ARCH = "arch"  # the candidate in ArchConfig's flat form
STATUS = "status"
REASON = "reason"  # why it was rejected, failed, stopped or interrupted
FAILURE = "failure"  # the kind of failure (error, diverged, data_mismatch, ...)
MACS = "macs"  # under the profile's counting convention
PARAMS = "params"  # counted parameters (convention)
TOTAL_PARAMS = "total_params"  # every unique parameter
MACS_BY_PART = "macs_by_part"
CURVE = "curve"  # the quality at each evaluation point
DIVERGED = "diverged"
DUPLICATE_OF = "duplicate_of"  # number of the trial already trained with the same arch
INTERRUPTED_WHILE = "interrupted_while"  # the status it had when the search stopped
WALL_S = "wall_s"
CPU_S = "cpu_s"
TRAIN_BPB = "train_bpb"
VAL_ACCURACY = "val_accuracy"
TOKENS = "tokens"  # trained on
STEPS = "steps"
DATA_FINGERPRINT = "data_fingerprint"
RAY_NODE = "ray_node"  # where it ran
# a recipe with active selection (``selection:``): what scoring its candidate pools cost
SELECTION_TOKENS = "selection_tokens"
SELECTION_MACS = "selection_macs"
SELECTION_S = "selection_s"
BASELINE = "baseline"  # on an enqueued reference design: "transformer" or "lite_transformer"
RETRY_OF = "retry_of"  # number of the interrupted trial this one runs again
SUPERNET_BPB = "supernet_bpb"  # on a finalist: its inherited-weights score in the supernet study
SUPERNET_TRIAL = "supernet_trial"  # on a finalist: its trial number in the supernet study
# on a finalist (and, as {trial number: score}, on the supernet study): its score after its
# inherited weights were fine-tuned (supernet.finetune_steps, the shortlist stage)
FINETUNED_BPB = "finetuned_bpb"
# on a trial of a supernet study whose recipe sets ``offsets``: the raw inherited-weights bpb,
# and what its layers' family offsets took off it (its supernet_bpb is the difference)
INHERITED_BPB = "inherited_bpb"
FAMILY_OFFSET = "family_offset"
# on a mutation the refine stage trained (companion study ``<study>.trained``): the trial number
# of the trained model it mutates, and the refine round (0, 1, ...) that proposed it
MUTATION_OF = "mutation_of"
REFINE_ROUND = "refine_round"

# ---- user attributes of a confirm run (study ``<study>.confirm``) ----------------------------
# besides ARCH, MACS, BASELINE, STATUS, REASON, CURVE, WALL_S, STEPS, TOKENS, DATA_FINGERPRINT

SOURCE_TRIAL = "source_trial"  # the trial of the searched study it retrains
SEED = "seed"
FACTOR = "factor"  # times the study recipe's token budget
MODEL = "model"  # how reports name it
TOKEN_BUDGET = "token_budget"
RESUMED = "resumed"  # continued from a checkpoint

# ---- values of STATUS ------------------------------------------------------------------------

TRAINING = "training"  # handed to a worker
COMPLETE = "complete"
STOPPED = "stopped"  # stopped early by a scheduler
FAILED = "failed"
INFEASIBLE = "infeasible"  # over budget, never trained
INVALID = "invalid"  # cannot be built, or breaks the space
DUPLICATE = "duplicate"  # already trained: told the twin's values
INTERRUPTED = "interrupted"
