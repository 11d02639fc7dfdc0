"""Performer attention (FAVOR+): softmax attention through positive orthogonal random features.

exp(q.k / sqrt(d)) is estimated as phi(q').phi(k') with q' = q / d^(1/4), k' = k / d^(1/4) and
phi(x) = exp(W x - |x|^2 / 2) / sqrt(m), W holding m random rows drawn in orthogonal blocks.
Attention then costs linear rather than quadratic time in the sequence length:

- non-causal: phi(Q) (phi(K)^T [V, 1]); the last column is the softmax normaliser;
- causal: chunked prefix sums. Within a chunk, an exact masked quadratic product; across chunks,
  a running state phi(K)^T [V, 1] carried forward. This avoids materialising one [m, d] outer
  product per token, which a plain cumsum would.

The 1 / sqrt(m) factor and every max-subtraction cancel between numerator and normaliser, so they
are left out or detached. Each key's features, scaled so the largest is 1, carry a floor of
KEY_FLOOR: without it a normaliser can underflow to 0 and training turns to NaN. The causal
stabilisers only use keys at or before a query (a running max), so outputs are exactly causal,
bit for bit, not only up to rounding. The features are a buffer drawn once at build time from a
generator seeded by torch's global RNG: the same ``torch.manual_seed`` gives the same model, and
parameter counts stay those of the projections.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.performer import CHUNK_CANDIDATES, causal_chunk, performer_macs
from archsearch.models.attention.common import Projections, merge_heads

__all__ = [
    "CHUNK_CANDIDATES",
    "PerformerAttention",
    "causal_chunk",
    "favor_attention",
    "orthogonal_features",
    "performer_macs",
]

KEY_FLOOR = 1e-6  # added to every key feature (scaled to max 1): keeps normalisers off zero


def orthogonal_features(
    heads: int, features: int, head_dim: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[heads, features, head_dim] random rows, orthogonal within blocks of ``head_dim`` rows.

    Each block is a Haar-random orthogonal matrix (QR of a Gaussian, signs fixed by R's
    diagonal); each row is rescaled by the norm of an independent Gaussian vector, so rows are
    marginally Gaussian as the unbiased estimator needs, but less redundant than i.i.d. rows.
    """
    blocks = math.ceil(features / head_dim)
    gaussian = torch.randn(heads, blocks, head_dim, head_dim, generator=generator)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign().unsqueeze(-2)
    rows = q.transpose(-1, -2).reshape(heads, blocks * head_dim, head_dim)[:, :features]
    norms = torch.randn(heads, features, head_dim, generator=generator).norm(dim=-1)
    return rows * norms.unsqueeze(-1)


def favor_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    features: torch.Tensor,
    causal: bool,
    chunk: int | None = None,
) -> torch.Tensor:
    """FAVOR+ estimate of softmax(q k^T / sqrt(d)) v for [B, H, T, d] heads.

    ``features`` is [H, m, d]; ``chunk`` (causal only) defaults to ``causal_chunk``. While
    ``torch.export`` traces (ONNX), the sequence length is symbolic: the caller passes a fixed
    chunk, and every shape-dependent branch takes its general path (same result, up to rounding).
    """
    scale = q.shape[-1] ** -0.25
    q_log = _log_features(q * scale, features)
    k_log = _log_features(k * scale, features)
    phi_q = torch.exp(q_log - q_log.detach().amax(-1, keepdim=True))
    values = torch.cat((v, v.new_ones((*v.shape[:-1], 1))), dim=-1)  # last column: normaliser
    if causal:
        tokens, m, width = q.shape[-2], features.shape[-2], q.shape[-1]
        out = _causal_favor(phi_q, k_log, values, chunk or causal_chunk(tokens, m, width))
    else:
        key_max = k_log.detach().amax(-1, keepdim=True)
        phi_k = _key_features(k_log, key_max) * (key_max - key_max.amax(-2, keepdim=True)).exp()
        out = phi_q @ (phi_k.transpose(-1, -2) @ values)
    return out[..., :-1] / out[..., -1:].clamp_min(torch.finfo(out.dtype).tiny)


def _key_features(k_log: torch.Tensor, key_max: torch.Tensor) -> torch.Tensor:
    """phi(k) per key, its largest feature scaled to 1, plus KEY_FLOOR on every feature.

    Without the floor, a query whose large features miss those of every visible key (as q and
    k grow in training) gets a normaliser that underflows to 0; its output is then 0 / tiny and
    the gradient through it inf, then NaN (seen at step 72 of a brief run). With it, the key
    holding the running maximum contributes at least KEY_FLOOR, since phi(q)'s largest feature
    is 1, so the normaliser stays above KEY_FLOOR.
    """
    return torch.exp(k_log - key_max) + KEY_FLOOR


def _log_features(x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """log phi(x) up to the constant -log(sqrt(m)): W x - |x|^2 / 2, shape [B, H, T, m]."""
    return torch.matmul(x, features.transpose(-1, -2)) - 0.5 * (x * x).sum(-1, keepdim=True)


def running_max(x: torch.Tensor) -> torch.Tensor:
    """Running maximum along the last axis. ONNX has no cummax: while exporting, the same
    maxima come from a masked [T, T] max (exact, as max involves no rounding)."""
    if not torch.compiler.is_exporting():
        return x.cummax(-1).values
    tokens = x.shape[-1]
    lower = torch.ones(tokens, tokens, dtype=torch.bool, device=x.device).tril()
    return torch.where(lower, x.unsqueeze(-2), -math.inf).amax(-1)


def _causal_favor(
    phi_q: torch.Tensor, k_log: torch.Tensor, values: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Causal numerator and normaliser [B, H, T, d+1] by chunks.

    Key features are stabilised per key (``key_max``); to weigh key j for query i they are
    multiplied by exp(key_max_j - run_max_i), run_max_i the largest key_max at or before i, so
    every factor is <= 1 and run_max_i (which cancels in the ratio) only depends on the past.
    """
    b, h, tokens, m = phi_q.shape
    e = values.shape[-1]
    exporting = torch.compiler.is_exporting()
    key_max = k_log.detach().amax(-1)
    run_max = running_max(key_max)
    phi_k = _key_features(k_log, key_max.unsqueeze(-1))
    n = (tokens + chunk - 1) // chunk
    pad = n * chunk - tokens
    if exporting or pad:
        phi_q = F.pad(phi_q, (0, 0, 0, pad))
        phi_k = F.pad(phi_k, (0, 0, 0, pad))
        values = F.pad(values, (0, 0, 0, pad))
        key_max = F.pad(key_max, (0, pad), value=-math.inf)
        run_max = torch.cat((run_max, run_max[..., -1:].expand(b, h, pad)), dim=-1)
    qc = phi_q.view(b, h, n, chunk, m)
    kc = phi_k.view(b, h, n, chunk, m)
    vc = values.view(b, h, n, chunk, e)
    mc = key_max.view(b, h, n, chunk)
    rc = run_max.view(b, h, n, chunk)

    lower = torch.ones(chunk, chunk, dtype=torch.bool, device=phi_q.device).tril()
    within = torch.where(lower, mc.unsqueeze(-2) - rc.unsqueeze(-1), -math.inf).exp()
    out = ((qc @ kc.transpose(-1, -2)) * within) @ vc
    if exporting or n > 1:
        chunk_max = mc.amax(-1)  # [B, H, n]
        local = (kc * (mc - chunk_max.unsqueeze(-1)).exp().unsqueeze(-1)).transpose(-1, -2) @ vc
        # before[c]: max key_max over chunks < c (the first key's for chunk 0, whose state is 0)
        before = torch.cat((key_max[..., :1], running_max(chunk_max)[..., :-1]), dim=-1)
        earlier = torch.ones(n, n, dtype=torch.bool, device=phi_q.device).tril(-1)
        mix = torch.where(earlier, chunk_max.unsqueeze(-2) - before.unsqueeze(-1), -math.inf).exp()
        state = (mix @ local.flatten(-2)).view(b, h, n, m, e)
        out = out + (qc @ state) * (before.unsqueeze(-1) - rc).exp().unsqueeze(-1)
    return out.reshape(b, h, n * chunk, e)[:, :, :tokens]


class PerformerAttention(nn.Module):
    """Multi-head attention whose score matrix is never formed (linear in sequence length)."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        width = ctx.layer.qkv_dim(ctx.d_model)
        self.causal = ctx.causal
        self.proj = Projections(ctx.d_model, width, ctx.layer.heads, bias=ctx.arch.bias)
        # The chunk a traced graph uses at every length (the one chosen for the longest).
        self.export_chunk = causal_chunk(
            ctx.arch.max_seq_len, ctx.layer.performer_features, width // ctx.layer.heads
        )
        seed = int(torch.randint(0, 2**62, ()).item())
        generator = torch.Generator().manual_seed(seed)
        features = orthogonal_features(
            ctx.layer.heads, ctx.layer.performer_features, width // ctx.layer.heads, generator
        )
        self.register_buffer("features", features)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        if memory is not None:
            raise ValueError("performer attention does not attend to recurrent memory")
        q, k, v = self.proj.qkv(x, None)
        chunk = self.export_chunk if torch.compiler.is_exporting() else None
        y = favor_attention(q, k, v, self.features.to(q.dtype), self.causal, chunk)
        return self.proj.out(merge_heads(y))
