"""Zero-cost proxies: scores of an untrained candidate that may predict its trained quality.

Every proxy is ``proxy(config, recipe) -> float`` and HIGHER MEANS PREDICTED BETTER (a lower
validation loss). Each one scores the very model that ``evaluate`` would start training from
(built under ``recipe.seed``) on one fixed minibatch of the recipe's data (``proxy_batch``:
training batch number ``recipe.seed``), so proxies are deterministic and comparable between
candidates. ``archsearch fidelity`` measures how well each one actually ranks, and a recipe
with ``proxy: <name>`` makes ``archsearch run`` search with that proxy (``score``) instead of
training.

- ``params``: parameters outside the embedding table and output layer (Archai's Lightweight
  Transformer Search ranks by decoder parameters).
- ``synflow`` (Tanaka et al. 2020; Abdelfattah et al. 2021): the natural log of
  ``sum |theta * dR/dtheta|`` where ``R`` is the sum of the logits of the network with every
  weight replaced by its absolute value, fed an all-ones input. For a language model the
  input is tokens, so the all-ones tensor replaces the OUTPUT of the embedding table (the
  factorized projection and every block stay on the path; the table itself is scored only
  where it is tied to the output layer). LayerNorm would map an all-ones vector to its bias
  (zero at initialisation) and erase the signal, so during synflow every LayerNorm acts as its
  (absolute) affine part only. Computed in float64 on a copy of the model; log-scaled because
  the product of absolute weights grows exponentially with depth. Note that the probe makes
  every position carry the same vector, so attention averages identical values: queries and
  keys carry no flow (exactly zero), and synflow scores an attention layer by its value and
  output projections alone. Performer is the exception in arithmetic, not in analysis: its
  exponential features turn the rounding error of that zero into flows of e^90 (a 7-layer
  model with two Performer layers scored 156 where the same model with full attention scores
  65), so synflow cuts Performer's query and key paths, which leaves the analytic value.
  A gated FFN (GLU) multiplies two paths, so its flow would be their product (a 6-layer Lite
  Transformer with gated FFNs overflowed float64, and 2 gated layers of 4 moved a model's score
  from 50 to 96); synflow takes its gate as ones, which scores it by its value path like the
  dense FFN of the same weights, and leaves the gate's weights without flow.
- ``grad_norm``: the L2 norm of the gradient of the training loss (plus auxiliary loss) over
  every parameter, i.e. the size of the first training step's gradient before clipping.
- ``jacob_cov`` (Mellor et al. 2020, v1): the per-example Jacobians of the summed logits with
  respect to the embedded input; ``-sum(log(l + k) + 1/(l + k))`` over the eigenvalues ``l``
  of their correlation matrix, ``k = 1e-5``. High when examples map to uncorrelated
  Jacobians, i.e. the network tells its inputs apart.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from archsearch.checks import check_count
from archsearch.config import ArchConfig
from archsearch.costs import estimate_costs
from archsearch.errors import InputError
from archsearch.evaluate.data import IGNORE, Batch, make_batches
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.retrieval import Datastore
from archsearch.evaluate.train import (
    check_compatible,
    datastore_for_model,
    retrieving_forward,
    task_forward,
)
from archsearch.families import all_specs
from archsearch.seeding import seeded

Proxy = Callable[[ArchConfig, Recipe], float]
JACOB_COV_K = 1e-5


def _cut_query_key_classes() -> tuple[type, ...]:
    """Attention modules whose query/key paths synflow cuts (their specs say why)."""
    return tuple(spec.module_class() for spec in all_specs() if spec.probe_cuts_query_key)


def _cut_gate_classes() -> tuple[type, ...]:
    """Gated modules whose gate (``act``) synflow takes as ones (their specs say why)."""
    return tuple(spec.module_class() for spec in all_specs() if spec.probe_cuts_gate)


def proxy_batch(recipe: Recipe) -> Batch:
    """The fixed minibatch every proxy reads: training batch number ``recipe.seed``."""
    return make_batches(recipe).train(recipe.seed)


def initial_model(config: ArchConfig, recipe: Recipe) -> nn.Module:
    """The model ``evaluate`` starts training from (same seed), built without touching the
    caller's random stream."""
    check_compatible(config, recipe)
    from archsearch.models import build_model

    return build_model(config, seed=recipe.seed)


# ---- proxies on a configuration --------------------------------------------------------------


def param_count(config: ArchConfig, recipe: Recipe) -> float:
    """Parameters outside the embedding table and output layer; more predicts better."""
    return float(estimate_costs(config).counted_params)


def synflow(config: ArchConfig, recipe: Recipe) -> float:
    """Log synaptic flow of the initial model (module docstring); more predicts better."""
    model = initial_model(config, recipe)
    return synflow_score(model, proxy_batch(recipe), recipe.task, proxy_store(model, recipe))


def grad_norm(config: ArchConfig, recipe: Recipe) -> float:
    """Gradient norm of the initial model's loss on the proxy batch; more predicts better."""
    model = initial_model(config, recipe)
    return grad_norm_score(model, proxy_batch(recipe), recipe.task, proxy_store(model, recipe))


def jacob_cov(config: ArchConfig, recipe: Recipe) -> float:
    """Jacobian-correlation score of the initial model; more predicts better."""
    model = initial_model(config, recipe)
    return jacob_cov_score(model, proxy_batch(recipe), recipe.task, proxy_store(model, recipe))


def proxy_store(model: nn.Module, recipe: Recipe) -> Datastore | None:
    """The training split's datastore for a retrieving model (None otherwise). The untrained
    model learns nothing from its neighbours, so the proxy batch's own text is not skipped."""
    return datastore_for_model(model, make_batches(recipe))


def _run(model: nn.Module, batch: Batch, task: str, store: Datastore | None) -> Any:
    """One forward as training runs it (neighbours looked up for a retrieving model)."""
    forward = retrieving_forward(model, store) if store is not None else None
    return (forward or task_forward(task))(model, batch, None)


PROXIES: dict[str, Proxy] = {
    "params": param_count,
    "synflow": synflow,
    "grad_norm": grad_norm,
    "jacob_cov": jacob_cov,
}


def score(config: ArchConfig, recipe: Recipe, *, threads: int | None = None) -> float:
    """The recipe's proxy (``proxy:`` key) of ``config``: what a proxy search records.

    ``threads`` sets torch's intra-op threads for the call (as ``evaluate`` does for training)
    and restores them after. The value may be NaN or infinite; the caller decides what that
    means (the search records such a candidate as failed).
    """
    if recipe.proxy is None:
        raise InputError("this recipe trains; it names no zero-cost proxy", key="proxy")
    return score_with(recipe.proxy, config, recipe, threads=threads)


def score_with(
    name: str, config: ArchConfig, recipe: Recipe, *, threads: int | None = None
) -> float:
    """Proxy ``name`` of ``config`` with torch's intra-op threads set as ``score`` does (a
    blended recipe's proxy, for one)."""
    if threads is not None:
        check_count("threads", threads)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return float(PROXIES[name](config, recipe))
    finally:
        torch.set_num_threads(previous)


# ---- the scores on a built model (tests reach in here) ---------------------------------------


def synflow_score(
    model: nn.Module, batch: Batch, task: str = "causal_lm", store: Datastore | None = None
) -> float:
    """``log sum |theta * dR/dtheta|`` of ``model`` linearised by absolute values; see module.

    Works on a float64 copy: ``model`` is left as it was. Returns ``-inf`` when the flow is
    zero and NaN when it overflows.
    """
    linear = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.abs_()
    handles = _ones_instead_of_embedding(linear)
    handles += [
        module.register_forward_hook(_affine_only)
        for module in linear.modules()
        if isinstance(module, nn.LayerNorm)
    ]
    handles += [
        projection.register_forward_hook(_no_flow)
        for module in linear.modules()
        if isinstance(module, _cut_query_key_classes())
        for projection in (module.proj.q, module.proj.k)
    ]
    handles += [
        module.act.register_forward_hook(_ones)
        for module in linear.modules()
        if isinstance(module, _cut_gate_classes())
    ]
    probe = Batch(
        inputs=torch.zeros_like(batch.inputs[:1]),
        targets=batch.targets[:1],
        fresh=True,
        source=None if batch.source is None else torch.zeros_like(batch.source[:1]),
    )
    try:
        # The fused CPU attention kernels recompute softmax in the backward pass; at synflow's
        # magnitudes that recomputation overflows. The math kernel keeps the probabilities.
        # seeded: any randomness inside the forward (routing noise) is fixed
        with seeded(0), sdpa_kernel(SDPBackend.MATH):
            output = _run(linear, probe, task, store)
            output.logits.sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    flow = sum(
        float((parameter * parameter.grad).abs().sum().detach())
        for parameter in linear.parameters()
        if parameter.grad is not None
    )
    if not math.isfinite(flow):
        return math.nan
    return math.log(flow) if flow > 0 else -math.inf


def grad_norm_score(
    model: nn.Module, batch: Batch, task: str = "causal_lm", store: Datastore | None = None
) -> float:
    """L2 norm over all parameters of the gradient of (loss + aux loss) on ``batch``.

    Gradients are computed with ``torch.autograd.grad``, so ``model``'s ``.grad`` fields are
    left alone.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.train()
    try:
        with seeded(0):
            output = _run(model, batch, task, store)
        logits = output.logits
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            batch.targets.reshape(-1),
            ignore_index=IGNORE,
        )
        grads = torch.autograd.grad(loss + output.aux_loss, parameters, allow_unused=True)
    finally:
        model.train(was_training)
    squares = sum(float(g.double().pow(2).sum()) for g in grads if g is not None)
    return math.sqrt(squares)


def jacob_cov_score(
    model: nn.Module, batch: Batch, task: str = "causal_lm", store: Datastore | None = None
) -> float:
    """``-sum(log(l + k) + 1/(l + k))`` over eigenvalues of the examples' Jacobian correlation.

    NaN when an example's Jacobian is constant (its correlation is undefined).
    """
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if inputs[0] is not batch.inputs and inputs[0] is not batch.source:
            return output  # retrieved neighbours: not an input of the example
        output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    embeddings = [model.embed]
    if getattr(model, "source_embed", None) is not None:  # an encoder of its own width
        embeddings.append(model.source_embed)
    handles = [embedding.register_forward_hook(keep) for embedding in embeddings]
    was_training = model.training
    model.eval()
    try:
        with seeded(0):
            output = _run(model, batch, task, store)
        grads = torch.autograd.grad(output.logits.sum(), captured, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    rows = batch.inputs.shape[0]
    jacobian = torch.cat(
        [
            (g if g is not None else torch.zeros_like(x)).reshape(rows, -1)
            for g, x in zip(grads, captured, strict=True)
        ],
        dim=1,
    ).double()
    correlation = torch.corrcoef(jacobian)
    if not torch.isfinite(correlation).all():
        return math.nan
    eigenvalues = torch.linalg.eigvalsh(correlation).clamp(min=0.0)
    shifted = eigenvalues + JACOB_COV_K
    return float(-(shifted.log() + 1.0 / shifted).sum())


def _ones_instead_of_embedding(model: nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
    """Replace the embedding tables' outputs by ones: synflow's all-ones input for tokens (a
    seq2seq encoder of its own width has its own table)."""

    def ones(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(output)

    tables = [model.embed.table]
    if getattr(model, "source_embed", None) is not None:
        tables.append(model.source_embed.table)
    return [table.register_forward_hook(ones) for table in tables]


def _ones(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """Ones in place of the module's output, with no path back: a gate that lets through."""
    return torch.ones_like(output)


def _no_flow(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """The projection's output, cut from the gradient: its flow under the probe is zero."""
    return output.detach()


def _affine_only(module: nn.LayerNorm, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """LayerNorm without the normalisation: ``x * weight + bias`` (weights already absolute)."""
    (x,) = inputs
    if module.weight is not None:
        x = x * module.weight
    if module.bias is not None:
        x = x + module.bias
    return x
