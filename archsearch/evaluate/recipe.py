"""Evaluator recipes: how a candidate's quality is measured, as a YAML file in ``evaluators/``.

A recipe names the task, the data, the tokenizer, the training budget, the optimizer and its
schedule, and how validation is done. Every core key is required, so a recipe file reads as the
complete description of the measurement; a typo, a wrong type or a value out of range is an
``InputError`` naming the file and the key.

Optional keys, each off unless given:

- ``vocab_size``: the BPE vocabulary (``tokenizer: bpe`` only; bytes are always 256);
- ``dedup``: ``none`` (default), ``exact`` or ``near``: drop duplicate training documents
  (and training documents that repeat a validation document) before training;
- ``curriculum``: ``{start_seq_len, fraction}``: sequence-length warm-up, growing the training
  sequences from ``start_seq_len`` to ``seq_len`` over the first ``fraction`` of the steps;
- ``proxy``: score with a zero-cost proxy instead of training. The training keys
  (``token_budget``, ``optimizer``, ``schedule``, ``grad_clip``, ``eval_tokens``,
  ``eval_points``) may then be left out: ``PROXY_TRAINING_DEFAULTS`` fills them, and they only
  describe the model the proxy scores (built exactly as training would start it);
- ``blend``: ``{proxy, weight}``: a training recipe's score becomes ``val_bpb - weight * proxy``
  (the proxy of the untrained model; every proxy is higher-is-better, so a higher proxy lowers
  the score). Brief training favours what learns fast; a proxy such as synflow grows with depth
  and capacity, which long training rewards. The training itself is unchanged;
- ``selection``: ``{pool, by}``: active data selection. Each step's batch is chosen from
  ``pool`` x ``batch_size`` candidate sequences by the model's current loss (``by: loss``: the
  highest-loss ones) or uniformly at random (``by: random``, the control that reads as much
  text without the loss). Validation is unchanged (selection.py).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archsearch.builtins import resolve
from archsearch.checks import check_integer, check_number
from archsearch.errors import InputError, yaml_key
from archsearch.yamlfile import read_yaml

if TYPE_CHECKING:
    from archsearch.space import SearchSpace

TASKS = ("causal_lm", "seq2seq")
# What ``data:`` may name. A built-in corpus by name, or a scheme and a value:
#   files:PATH        a local text file or a folder of them (relative to the recipe's folder)
#   hf:NAME[:CONFIG]  a Hugging Face dataset (optional extra, needs `datasets` and a network)
#   synthetic:TASK    a generated task; the generators live in synthetic.py, which imports torch
#                     (reading a recipe must not), so their names and task kinds are listed here.
DATA = ("python_stdlib",)
DATA_SCHEMES = ("files", "hf", "synthetic")
SYNTHETIC_TASKS = {
    "mqar": "causal_lm",
    "selective_copy": "causal_lm",
    "listops": "causal_lm",
    "reverse": "seq2seq",
}
TOKENIZERS = ("bytes", "bpe")
BYTE_VOCAB = 256
BPE_VOCAB_RANGE = (257, 65536)  # the 256 byte symbols plus at least one merge; ids fit int32
DEDUP_MODES = ("none", "exact", "near")
# Zero-cost proxies by name; proxies.py (which imports torch) implements them, so the names are
# listed here for validating a recipe without torch. Higher is predicted better for all four.
PROXY_NAMES = ("params", "synflow", "grad_norm", "jacob_cov")
# A proxy's definition, counted up when it changes what the proxy returns, so that saved
# results of the old definition (fidelity journals) are not read as the new one's. 2: synflow
# cuts Performer's query and key paths (archsearch/evaluate/proxies.py).
PROXY_REVISIONS = {"params": 1, "synflow": 2, "grad_norm": 1, "jacob_cov": 1}
OPTIMIZERS = ("adamw",)
SELECTION_CRITERIA = ("loss", "random")
# What a proxy recipe's left-out training keys mean: lm_brief's settings (they matter only for
# building the model the proxy scores, and for ``archsearch train`` if it is trained later).
PROXY_TRAINING_DEFAULTS: dict[str, Any] = {
    "token_budget": None,  # one step: batch_size x seq_len
    "optimizer": {"name": "adamw", "lr": 2.0e-3, "betas": [0.9, 0.95], "weight_decay": 0.1},
    "schedule": {"warmup_fraction": 0.1, "final_lr_ratio": 0.1},
    "grad_clip": 1.0,
    "eval_tokens": None,  # one batch
    "eval_points": 1,
}


@dataclass(frozen=True)
class Optimizer:
    """AdamW settings; weight decay applies to matrices only (not biases or norms)."""

    name: str
    lr: float
    betas: tuple[float, float]
    weight_decay: float

    def __post_init__(self) -> None:
        _choice(self, "name", OPTIMIZERS)
        _number(self, "lr", low=0.0, low_open=True)
        _number(self, "weight_decay", low=0.0)
        betas = self.betas
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise InputError(f"must be a list of two numbers, got {betas!r}", key="betas")
        for value in betas:
            check_number("betas", value, low=0.0, high=1.0, high_open=True)
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))


@dataclass(frozen=True)
class Schedule:
    """Linear warm-up over a fraction of the steps, then cosine decay to ``final_lr_ratio``."""

    warmup_fraction: float
    final_lr_ratio: float

    def __post_init__(self) -> None:
        _number(self, "warmup_fraction", low=0.0, high=1.0, high_open=True)
        _number(self, "final_lr_ratio", low=0.0, high=1.0)


@dataclass(frozen=True)
class Curriculum:
    """Sequence-length warm-up: training sequences grow linearly from ``start_seq_len`` to the
    recipe's ``seq_len`` over the first ``fraction`` of the steps (then stay at ``seq_len``)."""

    start_seq_len: int
    fraction: float

    def __post_init__(self) -> None:
        _integer(self, "start_seq_len", minimum=1)
        _number(self, "fraction", low=0.0, high=1.0, low_open=True)


@dataclass(frozen=True)
class Blend:
    """``blend``: score = validation bpb - ``weight`` x the ``proxy`` of the untrained model."""

    proxy: str
    weight: float

    def __post_init__(self) -> None:
        _choice(self, "proxy", PROXY_NAMES)
        _number(self, "weight", low=0.0, low_open=True)

    def score(self, val_bpb: float, proxy_value: float) -> float:
        """The blended score (lower is better): the one formula the search and fidelity share."""
        return val_bpb - self.weight * proxy_value


@dataclass(frozen=True)
class Selection:
    """``selection``: train each step on ``batch_size`` of ``pool`` x ``batch_size`` candidate
    sequences, chosen ``by`` the model's current loss (highest first) or at random."""

    pool: int
    by: str = "loss"

    def __post_init__(self) -> None:
        _integer(self, "pool", minimum=1)
        if self.pool == 1:
            raise InputError(
                "a pool of 1 batch leaves nothing to choose; use 2 or more, or leave out selection",
                key="pool",
            )
        _choice(self, "by", SELECTION_CRITERIA)


REFINE_BY = ("random", "family")  # refine's mutations: random ones, or whole-stack family swaps
REFINE_FROM = ("best", "baseline")  # refine's parent: the best trained, or best hand-designed
FINALIST_RULES = ("front", "family")  # SupernetSettings.finalists_by


@dataclass(frozen=True)
class SupernetSettings:
    """``supernet``: score candidates by the inherited weights of a weight-sharing supernet
    (archsearch/supernet/) trained once for ``token_budget`` tokens per sub-network slot with the
    sandwich rule (the largest, the smallest and ``random_subnets`` random sub-networks a step),
    optionally distilling from the largest (``distill``, the KL weight); ``probes`` random
    configurations size its tensors beside the space's extremes; each candidate is scored on
    ``score_tokens`` validation tokens."""

    token_budget: int
    random_subnets: int = 2
    distill: float = 0.0
    probes: int = 256
    score_tokens: int = 4096
    candidates: int = 500  # what `run` scores unless --trials says otherwise
    finalists: int = 3  # of the supernet front, trained from scratch afterwards (0: none)
    finalist_evaluator: str = "lm_brief_synflow"  # the recipe that trains them
    # how they are picked: "front" (spread over the front's MACs, its best among them) or
    # "family" (the best of each majority attention family, the better families first)
    finalists_by: str = "front"
    # each step's sub-networks get per-layer families dealt from a shuffled deck (every family
    # of a layer trained as often as the step's sub-networks allow), not drawn independently
    cover_families: bool = False
    # the second scoring stage (archsearch/supernet/finetune.py): a candidate's inherited
    # weights fine-tuned for ``finetune_steps`` steps at ``finetune_lr`` before it is scored,
    # which repairs most of what shared weights get wrong for a family (LSRA); ``shortlist`` is
    # how many raw-scored candidates `run` re-scores so before picking its finalists (0: none)
    finetune_steps: int = 0
    finetune_lr: float = 1e-3
    shortlist: int = 0
    # every score less its layers' family offsets (archsearch/supernet/offsets.py): what the
    # fine-tune repairs for each layer kind, measured once per kind on the run's supernet
    offsets: bool = False
    # after the finalists (archsearch/search/refine.py): ``refine_rounds`` rounds, each training
    # ``refine`` mutations of the best trained model so far (``refine_from: baseline``: of the
    # best baseline or mutation, the supernet's finalists left out) with the finalists' recipe
    # (0: none); ``refine_by: random`` mutates one or two decisions at random, ``family`` swaps
    # the attention or FFN family of every layer, the best swap of each kind by fine-tuned score
    refine: int = 0
    refine_rounds: int = 1
    refine_by: str = "random"
    refine_from: str = "best"

    def __post_init__(self) -> None:
        _integer(self, "finetune_steps", minimum=0)
        _number(self, "finetune_lr", low=0.0, low_open=True)
        _integer(self, "shortlist", minimum=0)
        if self.shortlist and not self.finetune_steps:
            raise InputError(
                "re-scores candidates by fine-tuning them: set finetune_steps > 0 too",
                key="shortlist",
            )
        for flag in ("cover_families", "offsets"):
            if not isinstance(getattr(self, flag), bool):
                raise InputError(f"must be true or false, got {getattr(self, flag)!r}", key=flag)
        if self.offsets and not self.finetune_steps:
            raise InputError(
                "are measured by fine-tuning a probe of each layer kind: set finetune_steps > 0",
                key="offsets",
            )
        _integer(self, "candidates", minimum=1)
        _integer(self, "finalists", minimum=0)
        _integer(self, "refine", minimum=0)
        _integer(self, "refine_rounds", minimum=1)
        _choice(self, "refine_by", REFINE_BY)
        _choice(self, "refine_from", REFINE_FROM)
        if self.refine_by == "family" and not self.finetune_steps:
            raise InputError(
                "ranks the family swaps by fine-tuning them: set finetune_steps > 0 too",
                key="refine_by",
            )
        _choice(self, "finalists_by", FINALIST_RULES)
        if not isinstance(self.finalist_evaluator, str) or not self.finalist_evaluator:
            raise InputError(
                f"must name a training recipe, got {self.finalist_evaluator!r}",
                key="finalist_evaluator",
            )
        _integer(self, "token_budget", minimum=1)
        _integer(self, "random_subnets", minimum=0)
        _number(self, "distill", low=0.0)
        _integer(self, "probes", minimum=1)
        _integer(self, "score_tokens", minimum=1)


@dataclass(frozen=True)
class Recipe:
    """A validated evaluator recipe. ``source`` is the file it came from (None if built in code)."""

    name: str
    task: str
    data: str
    tokenizer: str
    seq_len: int
    batch_size: int
    token_budget: int
    optimizer: Optimizer
    schedule: Schedule
    grad_clip: float
    eval_tokens: int
    eval_points: int
    seed: int
    description: str = ""
    vocab_size: int | None = None  # filled in: 256 for bytes; required for bpe
    dedup: str = "none"
    curriculum: Curriculum | None = None
    proxy: str | None = None
    blend: Blend | None = None
    supernet: SupernetSettings | None = None
    selection: Selection | None = None
    source: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("name", "description"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"must be text, got {getattr(self, name)!r}", key=name)
        # Types and ranges of the plain numbers first: the checks below compare and multiply them.
        for name in ("seq_len", "batch_size", "token_budget", "eval_tokens", "eval_points"):
            _integer(self, name, minimum=1)
        _integer(self, "seed", minimum=0)
        _number(self, "grad_clip", low=0.0, low_open=True)
        _choice(self, "task", TASKS)
        _check_data(self.data, self.task)
        _choice(self, "tokenizer", TOKENIZERS)
        self._check_vocab()
        _choice(self, "dedup", DEDUP_MODES)
        if self.proxy is not None:
            _choice(self, "proxy", PROXY_NAMES)
        if self.blend is not None:
            if not isinstance(self.blend, Blend):
                raise InputError("must be a mapping with proxy and weight", key="blend")
            if self.proxy is not None:
                raise InputError(
                    "blends a proxy into training's score; a proxy recipe does not train "
                    "(leave out proxy or blend)",
                    key="blend",
                )
        if self.supernet is not None:
            if not isinstance(self.supernet, SupernetSettings):
                raise InputError("must be a mapping of supernet settings", key="supernet")
            if self.proxy is not None or self.blend is not None:
                raise InputError(
                    "scores candidates by the supernet; leave out proxy and blend", key="supernet"
                )
            for name in ("token_budget", "score_tokens"):
                if getattr(self.supernet, name) % (self.batch_size * self.seq_len):
                    raise InputError(
                        f"must be a multiple of batch_size x seq_len = "
                        f"{self.batch_size * self.seq_len}, got {getattr(self.supernet, name)}",
                        key=f"supernet.{name}",
                    )
        if self.selection is not None:
            self._check_selection()
        if self.data_scheme == "synthetic":
            _refuse_text_options(self)
        if self.curriculum is not None:
            if not isinstance(self.curriculum, Curriculum):
                raise InputError(
                    "must be a mapping with start_seq_len and fraction", key="curriculum"
                )
            if self.curriculum.start_seq_len > self.seq_len:
                raise InputError(
                    f"must be at most seq_len ({self.seq_len}), "
                    f"got {self.curriculum.start_seq_len}",
                    key="curriculum.start_seq_len",
                )
        for name, kind in (("optimizer", Optimizer), ("schedule", Schedule)):
            if not isinstance(getattr(self, name), kind):
                raise InputError(f"must be a mapping of {kind.__name__.lower()} settings", key=name)
        step = self.tokens_per_step
        for name in ("token_budget", "eval_tokens"):
            if getattr(self, name) % step:
                raise InputError(
                    f"must be a multiple of batch_size x seq_len = {step}, "
                    f"got {getattr(self, name)}",
                    key=name,
                )
        if self.eval_points > self.steps:
            raise InputError(
                f"must be at most the number of training steps ({self.steps}), "
                f"got {self.eval_points}",
                key="eval_points",
            )

    def _check_selection(self) -> None:
        if not isinstance(self.selection, Selection):
            raise InputError("must be a mapping with pool (and by)", key="selection")
        if self.proxy is not None:
            raise InputError(
                "chooses training batches; a proxy recipe does not train (leave out proxy or "
                "selection)",
                key="selection",
            )
        if self.supernet is not None:
            raise InputError(
                "chooses training batches; the supernet's sandwich training does not (leave "
                "out supernet or selection)",
                key="selection",
            )

    @property
    def data_scheme(self) -> str:
        """``corpus`` for a built-in corpus name, else the scheme before the colon."""
        scheme, _ = split_data(self.data)
        return scheme

    def _check_vocab(self) -> None:
        if self.tokenizer == "bytes":
            if self.vocab_size not in (None, BYTE_VOCAB):
                raise InputError(
                    f"the bytes tokenizer has {BYTE_VOCAB} symbols, got {self.vocab_size!r} "
                    "(leave vocab_size out, or use tokenizer: bpe)",
                    key="vocab_size",
                )
            object.__setattr__(self, "vocab_size", BYTE_VOCAB)
            return
        if self.vocab_size is None:
            raise InputError("tokenizer: bpe needs a vocab_size", key="vocab_size")
        low, high = BPE_VOCAB_RANGE
        _integer(self, "vocab_size", minimum=low)
        if self.vocab_size > high:
            raise InputError(f"must be <= {high}, got {self.vocab_size}", key="vocab_size")

    def check_space(self, space: SearchSpace) -> None:
        """InputError on ``--evaluator`` unless this recipe measures the task ``space`` builds
        (a causal LM recipe cannot score an encoder-decoder space, nor the reverse)."""
        if space.task != self.task:
            raise InputError(
                f"space '{space.name}' is {space.task} but evaluator '{self.name}' measures "
                f"{self.task}",
                key="--evaluator",
            )

    @property
    def scores_by_proxy(self) -> bool:
        """True when candidates are scored by a zero-cost proxy, without training."""
        return self.proxy is not None

    @property
    def trains_candidates(self) -> bool:
        """True when each candidate is trained (not scored by a proxy or a supernet)."""
        return self.proxy is None and self.supernet is None

    @property
    def training(self) -> Recipe:
        """The recipe without ``blend`` or ``supernet``: what decides a from-scratch training
        run (a blend only rescores it; a supernet scores without it), so runs are shared
        between a recipe and its blended or supernet variant."""
        if self.blend is None and self.supernet is None:
            return self
        return self.replace(blend=None, supernet=None)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def steps(self) -> int:
        return self.token_budget // self.tokens_per_step

    @property
    def eval_batches(self) -> int:
        return self.eval_tokens // self.tokens_per_step

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some keys changed, validated again (e.g. a larger budget for fidelity)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The YAML form, for storing beside results; ``from_dict`` reads it back."""
        out = dataclasses.asdict(self)
        out.pop("source")
        out["optimizer"]["betas"] = list(self.optimizer.betas)
        if out["selection"] is None:
            # absent when off, so that what was keyed by recipes before it (fidelity journals,
            # supernet caches, studies, checkpoints) keeps its key
            out.pop("selection")
        return out

    def to_yaml_dict(self) -> dict[str, Any]:
        """``to_dict`` without the optional keys left at their defaults (for a readable file)."""
        out = self.to_dict()
        for key, default in OPTIONAL_DEFAULTS.items():
            if out.get(key) == default:
                out.pop(key, None)
        if self.tokenizer == "bytes":
            out.pop("vocab_size")
        return out

    @classmethod
    def from_dict(cls, data: Any, *, name: str = "recipe") -> Recipe:
        """Validate the YAML form; ``name`` is used when the mapping has none."""
        data = _mapping(data, key=None)
        data.setdefault("name", name)
        data.setdefault("description", "")
        for key, default in OPTIONAL_DEFAULTS.items():
            data.setdefault(key, default)
        if data.get("proxy") is not None:
            _fill_proxy_defaults(data)
        values = _take_keys(data, cls, exclude=frozenset({"source"}))
        for key, kind in (("optimizer", Optimizer), ("schedule", Schedule)):
            try:
                section = _mapping(values[key], key=None)
                values[key] = kind(**_take_keys(section, kind))
            except InputError as exc:
                raise exc.under(key) from None
        for key, kind in (
            ("curriculum", Curriculum),
            ("blend", Blend),
            ("supernet", SupernetSettings),
            ("selection", Selection),
        ):
            if values[key] is None:
                continue
            defaulted = frozenset(
                f.name for f in fields(kind) if f.default is not dataclasses.MISSING
            )
            try:
                section = _mapping(values[key], key=None)
                values[key] = kind(**_take_keys(section, kind, optional=defaulted))
            except InputError as exc:
                raise exc.under(key) from None
        return cls(**values)


OPTIONAL_DEFAULTS: dict[str, Any] = {
    "vocab_size": None,
    "dedup": "none",
    "curriculum": None,
    "proxy": None,
    "blend": None,
    "supernet": None,
    "selection": None,
}


def _fill_proxy_defaults(data: dict[str, Any]) -> None:
    """A proxy recipe may leave out the training keys (see the module docstring)."""
    step = None
    if isinstance(data.get("batch_size"), int) and isinstance(data.get("seq_len"), int):
        step = data["batch_size"] * data["seq_len"]
    for key, default in PROXY_TRAINING_DEFAULTS.items():
        if key in data:
            continue
        if default is None:  # one batch, which needs batch_size and seq_len to be valid
            if step is None:
                continue  # left missing: the missing batch_size / seq_len is reported
            default = step
        data[key] = copy.deepcopy(default)


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe's name or a path to a recipe file -> a validated ``Recipe``."""
    path = resolve("evaluators", name_or_path, option="--evaluator")
    data = read_yaml(path)
    try:
        recipe = Recipe.from_dict(data, name=path.stem)
    except InputError as exc:
        raise exc.located(str(path)) from None
    scheme, value = split_data(recipe.data)
    if scheme == "files":  # a path in a recipe is relative to the recipe, not to the caller
        located = Path(value).expanduser()
        if not located.is_absolute():
            located = (path.parent / located).resolve()
        recipe = dataclasses.replace(recipe, data=f"files:{located}")
    return dataclasses.replace(recipe, source=str(path))


def split_data(data: str) -> tuple[str, str]:
    """``data:`` -> (scheme, value): ("corpus", "python_stdlib"), ("files", "notes/") ..."""
    scheme, colon, value = data.partition(":")
    if colon and scheme in DATA_SCHEMES:
        return scheme, value
    return "corpus", data


def _check_data(data: Any, task: str) -> None:
    """The data source is well formed and fits the task (checked again when it is loaded)."""
    if not isinstance(data, str):
        raise InputError(f"must be text, got {data!r}", key="data")
    scheme, value = split_data(data)
    known = (
        f"known: {', '.join(DATA)}, files:PATH, hf:NAME[:CONFIG], "
        f"synthetic:{{{','.join(SYNTHETIC_TASKS)}}}"
    )
    if scheme == "corpus" and data not in DATA:
        raise InputError(f"unknown data source {data!r} ({known})", key="data")
    if scheme != "corpus" and not value.strip():
        raise InputError(f"'{scheme}:' needs a value after the colon ({known})", key="data")
    if scheme == "synthetic" and value not in SYNTHETIC_TASKS:
        raise InputError(
            f"unknown synthetic task {value!r} (known: {', '.join(SYNTHETIC_TASKS)})", key="data"
        )
    data_task = SYNTHETIC_TASKS[value] if scheme == "synthetic" else "causal_lm"
    if data_task != task:
        raise InputError(
            f"task {task} cannot be trained on {data!r}, which is {data_task} data"
            + (" (seq2seq needs synthetic:reverse)" if task == "seq2seq" else ""),
            key="task",
        )


def _refuse_text_options(recipe: Recipe) -> None:
    """Generated examples have their own symbols, a fixed format and no documents: BPE,
    a length warm-up and de-duplication mean nothing there."""
    if recipe.tokenizer != "bytes":
        raise InputError(
            f"synthetic tasks have their own symbols; use tokenizer: bytes for {recipe.data}",
            key="tokenizer",
        )
    if recipe.curriculum is not None:
        raise InputError(
            f"synthetic tasks have fixed-format sequences of seq_len tokens; remove curriculum "
            f"for {recipe.data}",
            key="curriculum",
        )
    if recipe.dedup != "none":
        raise InputError(
            f"synthetic tasks generate every example afresh, there are no documents to "
            f"de-duplicate; use dedup: none for {recipe.data}",
            key="dedup",
        )


def _take_keys(
    data: dict[str, Any],
    kind: type,
    *,
    exclude: frozenset[str] = frozenset(),
    optional: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Exactly the fields of ``kind``: unknown and missing keys are errors."""
    known = [f.name for f in fields(kind) if f.name not in exclude]
    for key in data:
        if key not in known:
            raise InputError(f"unknown key (known: {', '.join(known)})", key=yaml_key(key))
    for key in known:
        if key not in data and key not in optional:
            raise InputError("missing", key=key)
    return {key: data[key] for key in known if key in data}


def _mapping(value: Any, *, key: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"must be a mapping of keys to values, got {value!r}", key=key)
    return dict(value)


def _choice(obj: Any, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in allowed:
        raise InputError(f"{value!r} is not one of {', '.join(allowed)}", key=name)


def _integer(obj: Any, name: str, *, minimum: int) -> None:
    check_integer(name, getattr(obj, name), minimum)


def _number(obj: Any, name: str, **limits: Any) -> None:
    value = getattr(obj, name)
    check_number(name, value, **limits)
    object.__setattr__(obj, name, float(value))
