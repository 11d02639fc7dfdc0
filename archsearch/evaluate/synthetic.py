"""Synthetic tasks that separate attention types, scored on their answer positions only.

- ``mqar``: multi-query associative recall (Zoology, Arora et al. 2023): key-value pairs, then
  queries of earlier keys; the answer to each query is its key's value. Needs precise lookup
  over the whole context, which full attention does and low-rank / local attention struggle with.
- ``selective_copy``: a few data tokens scattered among blanks, then a separator; the model must
  copy the data tokens in order (Mamba, Gu & Dao 2023). Needs content-dependent selection.
- ``listops``: a nested prefix expression of MAX / MIN / MED / SM (sum mod 10) over digits,
  then ``=`` and its value (Nangia & Bowman 2018; Long Range Arena). Needs the whole sequence.
- ``reverse`` (seq2seq): the target is the source reversed; for encoder-decoder spaces.

Every example is generated from a ``random.Random`` seeded by (task, split, index, row), so a
batch is the same on every machine and every call, training and validation never share a seed,
and resuming training needs no generator state. Token ids stay below 256 (the byte vocabulary).
Targets are ``IGNORE`` everywhere except the answers.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable

import torch

from archsearch.errors import InputError
from archsearch.evaluate.batch import IGNORE, Batch

_FORMAT = "archsearch-synthetic-v1"  # bump when a generator changes, so fingerprints change

Example = tuple[list[int], list[int], list[int] | None]  # inputs, targets, source (seq2seq)

# mqar: keys and values come from disjoint halves of the vocabulary.
MQAR_KEYS = range(0, 128)
MQAR_VALUES = range(128, 256)
# selective_copy
BLANK, SEPARATOR = 0, 1
COPY_TOKENS = range(2, 256)
# listops: digits are their own ids; an operator token stands for "[OP"; "]" closes.
DIGITS = range(10)
OPERATORS = {10: "MAX", 11: "MIN", 12: "MED", 13: "SM"}
CLOSE, PAD, EQUALS = 14, 15, 16
LISTOPS_MAX_ARGS = 5
# reverse
BOS = 1
REVERSE_TOKENS = range(2, 256)


def mqar(rng: random.Random, seq_len: int) -> Example:
    """``k1 v1 ... kn vn q1 q2 ...``: at each query position the target is the query's value."""
    pairs = min(len(MQAR_KEYS), max(1, seq_len // 4))
    keys = rng.sample(MQAR_KEYS, pairs)
    values = [rng.choice(MQAR_VALUES) for _ in keys]
    inputs, targets = [], []
    for key, value in zip(keys, values, strict=True):
        inputs += [key, value]
        targets += [IGNORE, IGNORE]
    while len(inputs) < seq_len:
        which = rng.randrange(pairs)
        inputs.append(keys[which])
        targets.append(values[which])
    return inputs, targets, None


def selective_copy(rng: random.Random, seq_len: int) -> Example:
    """``n`` data tokens among ``seq_len - n`` blanks, a separator, then the data in order."""
    count = max(1, seq_len // 8)
    region = seq_len - count
    data = [rng.choice(COPY_TOKENS) for _ in range(count)]
    where = sorted(rng.sample(range(region), count))
    sequence = [BLANK] * region
    for position, token in zip(where, data, strict=True):
        sequence[position] = token
    sequence += [SEPARATOR, *data]  # seq_len + 1 tokens: inputs and next-token targets
    # target j is sequence[j + 1]; only the copied data (after the separator) is scored
    targets = [sequence[j + 1] if j + 1 > region else IGNORE for j in range(seq_len)]
    return sequence[:seq_len], targets, None


def listops_value(tokens: list[int]) -> int:
    """Evaluate a prefix expression of operator tokens, digits and ``CLOSE``."""
    stack: list[list[int]] = [[]]
    operators: list[int] = []
    for token in tokens:
        if token in OPERATORS:
            operators.append(token)
            stack.append([])
        elif token == CLOSE:
            args = stack.pop()
            stack[-1].append(_apply(OPERATORS[operators.pop()], args))
        else:
            stack[-1].append(token)
    (value,) = stack[0]
    return value


def _apply(name: str, args: list[int]) -> int:
    if name == "MAX":
        return max(args)
    if name == "MIN":
        return min(args)
    if name == "MED":
        return sorted(args)[(len(args) - 1) // 2]  # the lower median keeps values digits
    return sum(args) % 10


def _expression(rng: random.Random, depth: int) -> list[int]:
    if depth == 0 or rng.random() < 0.25:
        return [rng.choice(DIGITS)]
    out = [rng.choice(list(OPERATORS))]
    for _ in range(rng.randint(2, LISTOPS_MAX_ARGS)):
        out += _expression(rng, depth - 1)
    return [*out, CLOSE]


def listops(rng: random.Random, seq_len: int) -> Example:
    """``PAD... expression =``; only the last target (the expression's value) is scored."""
    if seq_len < 5:
        raise InputError("listops needs seq_len >= 5", key="seq_len")
    depth = max(1, round(math.log(seq_len, 3)))  # trees that usually fit; deeper is rejected
    while True:
        tokens = [rng.choice(list(OPERATORS))]
        for _ in range(rng.randint(2, LISTOPS_MAX_ARGS)):
            tokens += _expression(rng, depth - 1)
        tokens.append(CLOSE)
        if len(tokens) <= seq_len - 1:
            break
        depth = max(1, depth - 1)  # too long: try again, shallower
    inputs = [PAD] * (seq_len - 1 - len(tokens)) + tokens + [EQUALS]
    targets = [IGNORE] * (seq_len - 1) + [listops_value(tokens)]
    return inputs, targets, None


def reverse(rng: random.Random, seq_len: int) -> Example:
    """Source: random tokens; target: the source reversed, teacher-forced after ``BOS``."""
    source = [rng.choice(REVERSE_TOKENS) for _ in range(seq_len)]
    target = source[::-1]
    return [BOS, *target[:-1]], target, source


GENERATORS: dict[str, Callable[[random.Random, int], Example]] = {
    "mqar": mqar,
    "selective_copy": selective_copy,
    "listops": listops,
    "reverse": reverse,
}
MIN_SEQ_LEN = {"mqar": 4, "selective_copy": 4, "listops": 5, "reverse": 1}


class SyntheticBatches:
    """Batches of one synthetic task (the ``Batches`` protocol of data.py)."""

    answers_only = True

    def __init__(self, task: str, *, batch_size: int, seq_len: int):
        if task not in GENERATORS:
            known = ", ".join(GENERATORS)
            raise InputError(f"unknown synthetic task {task!r} (known: {known})", key="data")
        if seq_len < MIN_SEQ_LEN[task]:
            raise InputError(f"{task} needs seq_len >= {MIN_SEQ_LEN[task]}", key="seq_len")
        self.task, self.batch_size, self.seq_len = task, batch_size, seq_len
        self.description = (
            f"synthetic {task}: {batch_size} generated sequences of {seq_len} tokens per batch, "
            "scored on answer positions"
        )
        digest = hashlib.sha256(f"{_FORMAT}\0{task}\0{batch_size}\0{seq_len}\0".encode())
        first = self.valid(0)
        for tensor in (first.inputs, first.targets, first.source):
            if tensor is not None:
                digest.update(tensor.numpy().tobytes())
        self.fingerprint = digest.hexdigest()

    def train(self, step: int) -> Batch:
        return self._batch("train", step)

    def valid(self, index: int) -> Batch:
        return self._batch("valid", index)

    def _batch(self, split: str, index: int) -> Batch:
        generate = GENERATORS[self.task]
        rows = [
            generate(random.Random(f"{self.task}:{split}:{index}:{row}"), self.seq_len)
            for row in range(self.batch_size)
        ]
        inputs = torch.tensor([row[0] for row in rows], dtype=torch.long)
        targets = torch.tensor([row[1] for row in rows], dtype=torch.long)
        source = None
        if rows[0][2] is not None:
            source = torch.tensor([row[2] for row in rows], dtype=torch.long)
        return Batch(inputs, targets, fresh=True, source=source)
