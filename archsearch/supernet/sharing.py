"""Which supernet tensor a sub-network parameter is a slice of: the sharing rules, by name.

A sub-network is the ordinary model ``build_model`` makes; its parameter names say where each
weight sits (``blocks.3.attn.proj.q.weight``). Weights with the same role share one tensor:

- embeddings, norms and the output head: shared by every configuration (leading slices when
  ``d_model`` or the embedding width is smaller);
- the query/key/value/output projections of a layer: shared by every attention family of that
  layer, since full, local, Linformer, Performer, LSH and LSRA attention differ in how they
  attend, not in how they project (LSH ties queries and keys, so it has no key projection;
  LSRA projects the channels of its attention branch: a leading slice);
- what only one family has (Linformer's length projections, LSRA's convolution branch, the
  experts and router of a switch MoE, the sparse controller, a dense FFN's two matrices): once
  per layer and family, at the largest size any configuration needs.

Where a parameter sits in its tensor (``placement``) is a leading slice, except in LSRA's
convolution branch: it reads and writes the residual channels after the attention branch's,
which start at ``d_model x lsra_split`` and so move with the split and the width. Its weights are
placed by residual channel (so channel 200 meets the same weights whatever the split), its GLU's
value and gate rows of a channel side by side, and its causal kernel's taps by distance back
from the current position (a leading slice would give a short kernel the long one's far-past
taps). That is what sharing should mean; it did not remove the supernet's bias against LSRA
(``benchmarks/supernet_families.py``, README).

Kept torch-free: the rules are names only; a family's spec maps its own projection names
(``supernet_aliases``).
"""

from __future__ import annotations

from typing import Any

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.families import attention_spec
from archsearch.space import SearchSpace

Placement = tuple[range | list[int], ...]  # per dimension: the indices a parameter occupies


def placement(name: str, arch: ArchConfig, shape: tuple[int, ...]) -> Placement:
    """The indices of its shared tensor that parameter ``name`` (of ``shape``) occupies."""
    leading: Placement = tuple(range(n) for n in shape)
    parts = name.split(".")
    if len(parts) < 5 or parts[0] != "blocks" or parts[2:4] != ["attn", "conv"]:
        return leading
    layer = arch.layers[int(parts[1])]
    if layer.attention != "lsra" or layer.conv_type != "lightweight":
        return leading  # dynamic kernels' predictor rows are kernel-major: left leading
    first = round(arch.d_model * layer.lsra_split)  # the branch's first residual channel
    channels = [first + j for j in range(shape[-1])] if len(shape) == 2 else []
    rest = ".".join(parts[4:])
    if rest == "glu.weight":  # rows: values then gates, one per channel; columns: channels
        values = [2 * c for c in channels]
        return (values + [v + 1 for v in values], channels)
    if rest == "out.weight":
        return (channels, channels)
    if rest == "conv.weight":  # (groups, taps), tap k-1 the current position
        return (range(shape[0]), list(range(shape[1] - 1, -1, -1)))
    return leading


def shared_name(name: str, arch: ArchConfig) -> str:
    """The supernet tensor that parameter ``name`` of ``arch``'s model is a leading slice of."""
    parts = name.split(".")
    if len(parts) > 3 and parts[0] == "blocks" and parts[2] in ("attn", "ffn"):
        index, part, rest = parts[1], parts[2], ".".join(parts[3:])
        layer = arch.layers[int(index)]
        if part == "attn":
            # a family naming its projections otherwise says so (LSH: no ``proj.`` prefix)
            rest = attention_spec(layer.attention).supernet_aliases.get(rest, rest)
            if rest.startswith("proj."):
                return f"blocks.{index}.attn.{rest}"
            return f"blocks.{index}.attn.{layer.attention}.{rest}"
        return f"blocks.{index}.ffn.{layer.ffn}.{rest}"
    return name


def check_shareable(space: SearchSpace) -> None:
    """InputError, naming the key, for a space the supernet cannot share weights over."""
    where = space.source
    if space.task != "causal_lm":
        raise InputError(
            f"the supernet covers causal_lm spaces; space '{space.name}' is {space.task}",
            key="task",
            source=where,
        )
    for key, refused, why in (
        (
            "memory",
            "none",
            "recurrent memory carries state across segments, which one "
            "shared forward over fixed batches cannot score; fix memory: none",
        ),
        (
            "retrieval_chunk",
            0,
            "retrieval reads neighbours that the evaluator looks up per batch in a "
            "datastore, which the supernet's shared forward does not; fix retrieval_chunk: 0",
        ),
        (
            "share_layers",
            False,
            "ALBERT cross-layer sharing ties the layers a supernet keeps "
            "apart; fix share_layers: false",
        ),
    ):
        values = _values_of(space, key, refused)
        if any(value != refused for value in values):
            raise InputError(f"the supernet cannot search {key}: {why}", key=key, source=where)


def _values_of(space: SearchSpace, key: str, default: Any) -> list[Any]:
    if key in space.params:
        param = space.params[key]
        return list(param.choices) if param.kind == "choice" else [None]
    return [space.fixed.get(key, default)]
