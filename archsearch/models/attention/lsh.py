"""Reformer's LSH attention: shared query-keys hashed by random rotations, attention in chunks.

Keys are the length-normalised queries (shared-QK). Each hashing round assigns every token a
bucket, argmax([x R, -x R]) for a random rotation R, x the rotary-positioned query (the vector
whose dot products are the scores); tokens are sorted by (bucket, position)
and cut into chunks of ``lsh_bucket_size``; each chunk attends to itself and the previous chunk.
A token never attends to itself unless it has nothing else (its score is -1e5, as in Reformer).
Rounds are combined by weighting each round's output with its softmax mass (logsumexp);
a key found in several rounds is not de-duplicated.

Which keys a query sees:

- non-causal (encoders): every key in its chunk and the previous one (wrapping around), as in
  Reformer, whatever their bucket;
- causal: keys in the same bucket, at or before the query, at most ``lsh_bucket_size`` places
  back in the sorted order -- i.e. the query's ``lsh_bucket_size`` latest same-bucket
  predecessors. Reformer's "same or previous chunk" rule is not causal: a future token sorted
  into an earlier bucket shifts the chunk boundaries and so which past keys a query sees. The
  rule here only depends on past tokens' buckets, and the sorted window it needs always lies in
  the query's chunk and the previous one, so the cost is the same.

With ``lsh_bucket_size >= T`` there is one bucket and one chunk: exactly full shared-QK
attention (with the self rule). The rotations are a buffer drawn at build time from a generator
seeded by torch's global RNG, sized for ``max_seq_len``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.lsh import bucket_count, lsh_macs, lsh_params
from archsearch.models.attention.common import merge_heads, split_heads
from archsearch.models.positions import rotary

__all__ = [
    "LSHAttention",
    "bucket_count",
    "hash_buckets",
    "lsh_attention",
    "lsh_macs",
    "lsh_params",
]

SELF_SCORE = -1e5  # a token's score for itself: used only when it can see nothing else


def hash_buckets(q: torch.Tensor, rotations: torch.Tensor, buckets: int) -> torch.Tensor:
    """Bucket of each token in each round, [B, H, R, T]: argmax over [x R, -x R].

    ``q`` is [B, H, T, d]; ``rotations`` is [H, d, R, buckets // 2].
    """
    b, h, t, _ = q.shape
    heads, d, rounds, half = rotations.shape
    if half != buckets // 2:
        raise ValueError(f"rotations give {2 * half} buckets, not {buckets}")
    projected = (q @ rotations.reshape(heads, d, rounds * half)).view(b, h, t, rounds, half)
    return torch.cat((projected, -projected), dim=-1).argmax(-1).permute(0, 1, 3, 2)


def lsh_attention(
    q: torch.Tensor, v: torch.Tensor, buckets: torch.Tensor, chunk: int, causal: bool
) -> torch.Tensor:
    """Shared-QK attention of [B, H, T, d] heads within sorted chunks, rounds given by
    ``buckets`` [B, H, R, T]; ``chunk`` is the chunk length (and the causal window)."""
    b, h, tokens, d = q.shape
    rounds = buckets.shape[2]
    keys = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    positions = torch.arange(tokens, device=q.device)
    order = _ascending(buckets * tokens + positions)  # by bucket, then position

    def sort(x: torch.Tensor) -> torch.Tensor:  # [B, H, T, f] -> [B, H, R, T, f]
        shape = (b, h, rounds, tokens, x.shape[-1])
        return x.unsqueeze(2).expand(shape).gather(3, order.unsqueeze(-1).expand(shape))

    n = math.ceil(tokens / chunk)
    pad = n * chunk - tokens
    qs, ks, vs = (F.pad(sort(x), (0, 0, 0, pad)) for x in (q, keys, v))
    pad_positions = torch.arange(tokens, tokens + pad, device=q.device).expand(b, h, rounds, pad)
    pos = torch.cat((order, pad_positions), dim=-1)
    bucket = F.pad(buckets.gather(-1, order), (0, pad), value=-1)  # padding is in no bucket
    rank = torch.arange(n * chunk, device=q.device).expand(b, h, rounds, n * chunk)

    def chunks(x: torch.Tensor) -> torch.Tensor:  # [B, H, R, n*c, ...] -> [B, H, R, n, c, ...]
        return x.view(b, h, rounds, n, chunk, *x.shape[4:])

    def window(x: torch.Tensor) -> torch.Tensor:  # this chunk's keys: previous chunk + itself
        x = chunks(x)
        return x if n == 1 else torch.cat((x.roll(1, dims=3), x), dim=4)

    scores = (chunks(qs) @ window(ks).transpose(-1, -2)) * d**-0.5
    q_pos, k_pos = chunks(pos).unsqueeze(-1), window(pos).unsqueeze(-2)
    if causal:
        q_rank, k_rank = chunks(rank).unsqueeze(-1), window(rank).unsqueeze(-2)
        same = chunks(bucket).unsqueeze(-1) == window(bucket).unsqueeze(-2)
        allowed = same & (k_pos <= q_pos) & (k_rank >= q_rank - chunk)
    else:
        allowed = k_pos < tokens
    scores = scores.masked_fill(~allowed, -math.inf)
    scores = torch.where(k_pos == q_pos, SELF_SCORE, scores)
    mass = _logsumexp(scores)
    out = torch.exp(scores - mass) @ window(vs)  # [B, H, R, n, c, d]

    inverse = _inverse(order)
    out = out.reshape(b, h, rounds, n * chunk, d)[:, :, :, :tokens]
    out = out.gather(3, inverse.unsqueeze(-1).expand(b, h, rounds, tokens, d))
    if rounds == 1:
        return out[:, :, 0]
    mass = mass.reshape(b, h, rounds, n * chunk)[..., :tokens].gather(3, inverse)
    weights = torch.softmax(mass, dim=2).unsqueeze(-1)
    return (weights * out).sum(2)


def _ascending(keys: torch.Tensor) -> torch.Tensor:
    """Indices that sort distinct integer ``keys`` along the last axis. ONNX has no (stable)
    sort: while exporting, a full top-k, which gives the same order for distinct keys."""
    if not torch.compiler.is_exporting():
        return keys.argsort(dim=-1, stable=True)
    return torch.topk(keys, keys.shape[-1], dim=-1, largest=False, sorted=True).indices


def _logsumexp(scores: torch.Tensor) -> torch.Tensor:
    """logsumexp over the last axis, keeping it. The exporter's ReduceLogSumExp subtracts no
    maximum, so a query whose only key is itself (-1e5) would get log(0): while exporting,
    the maximum is subtracted here."""
    if not torch.compiler.is_exporting():
        return scores.logsumexp(-1, keepdim=True)
    peak = scores.amax(-1, keepdim=True)
    return peak + torch.exp(scores - peak).sum(-1, keepdim=True).log()


def _inverse(order: torch.Tensor) -> torch.Tensor:
    """The permutation that undoes ``order`` (a scatter while exporting: no sort in ONNX)."""
    if not torch.compiler.is_exporting():
        return order.argsort(dim=-1)
    places = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    return torch.zeros_like(order).scatter(-1, order, places)


class LSHAttention(nn.Module):
    """Reformer attention: query (= key) and value projections, hashing, chunked attention."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        d, width, heads = ctx.d_model, ctx.layer.qkv_dim(ctx.d_model), ctx.layer.heads
        self.heads = heads
        self.causal = ctx.causal
        self.bucket_size = ctx.layer.lsh_bucket_size
        self.hashes = ctx.layer.lsh_hashes
        self.max_tokens = ctx.arch.max_seq_len
        self.q = nn.Linear(d, width, bias=False)
        self.v = nn.Linear(d, width, bias=False)
        self.out = nn.Linear(width, d, bias=False)
        half = max(1, bucket_count(self.max_tokens, self.bucket_size, self.max_tokens) // 2)
        seed = int(torch.randint(0, 2**62, ()).item())
        generator = torch.Generator().manual_seed(seed)
        rotations = torch.randn(heads, width // heads, self.hashes, half, generator=generator)
        self.register_buffer("rotations", rotations)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        if memory is not None:
            raise ValueError("LSH attention does not attend to recurrent memory")
        tokens = x.shape[1]
        q = rotary(split_heads(self.q(x), self.heads))
        v = split_heads(self.v(x), self.heads)
        buckets = bucket_count(tokens, self.bucket_size, self.max_tokens)
        if buckets == 1:  # one bucket: every round is the same, hashing is pointless
            assigned = torch.zeros(
                q.shape[0], self.heads, 1, tokens, dtype=torch.long, device=x.device
            )
        else:
            rotations = self.rotations[..., : buckets // 2].to(q.dtype)
            assigned = hash_buckets(q, rotations, buckets)
        y = lsh_attention(q, v, assigned, min(self.bucket_size, tokens), self.causal)
        return self.out(merge_heads(y))
