"""Linformer attention: keys and values compressed along the sequence axis to ``linformer_k`` slots.

Learned projections E (keys) and F (values), each ``[k, max_seq_len]``, shared by all heads
(Linformer's headwise sharing); a sequence of T tokens uses their first T columns. Rotary positions
are applied to queries and keys before the compression, so the compressed keys still carry them.

Encoders (bidirectional): every query attends to the k slots ``E K`` / ``F V`` -- the paper's form.

Causal stacks: a plain Linformer slot mixes every position, future ones included, so it would
leak. We use a blockwise causal form instead: the sequence is cut into blocks of c = k tokens;
queries of block j attend exactly (causally masked) to the keys of their own block and to the k
slots ``E[:, :jc] K[:jc]`` / ``F[:, :jc] V[:jc]`` that summarise only the *completed* blocks
before it (no slots for block 0). The summaries are prefix sums of per-block projections, so cost
stays linear in T: per query k + c keys. Reductions: with T <= k there is one block and the causal
form *is* exact causal softmax attention; the encoder form with k = T and E = F = identity is
exact full attention. Recurrent memory is not supported (compressed slots have no positions to
extend).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.errors import InputError
from archsearch.families import BlockContext
from archsearch.families.linformer import linformer_macs, linformer_params
from archsearch.models.attention.common import Projections, merge_heads

__all__ = ["LinformerAttention", "linformer_macs", "linformer_params"]


class LinformerAttention(nn.Module):
    """Queries over k compressed key/value slots (encoders) or blockwise causal (decoders)."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        layer = ctx.layer
        self.k = layer.linformer_k
        self.max_seq_len = ctx.arch.max_seq_len
        self.causal = ctx.causal
        self.proj = Projections(
            ctx.d_model, layer.qkv_dim(ctx.d_model), layer.heads, bias=ctx.arch.bias
        )
        # std 1/sqrt(max_seq_len) keeps a slot, a sum over up to max_seq_len keys, at key scale
        std = self.max_seq_len**-0.5
        self.e = nn.Parameter(torch.randn(self.k, self.max_seq_len) * std)
        self.f = nn.Parameter(torch.randn(self.k, self.max_seq_len) * std)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        if memory is not None:
            raise ValueError("linformer attention has no recurrent memory")
        t = x.shape[1]
        if t > self.max_seq_len:
            raise InputError(
                f"a sequence of {t} tokens is longer than linformer's projections "
                f"({self.max_seq_len} positions)",
                key="max_seq_len",
            )
        q, k, v = self.proj.qkv(x, None)
        if not self.causal:
            k = self.e[:, :t] @ k  # [k, T] @ [B,H,T,d] -> [B,H,k,d]
            v = self.f[:, :t] @ v
            y = F.scaled_dot_product_attention(q, k, v)
        elif t <= self.k:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = self._blockwise_causal(q, k, v)
        return self.proj.out(merge_heads(y))

    def _blockwise_causal(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Own block exactly, earlier completed blocks through prefix-summed k-slot summaries."""
        b, h, t, d = q.shape
        c = self.k
        n = math.ceil(t / c)
        done = (n - 1) * c  # tokens in completed blocks; only they are ever summarised

        def summaries(x: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
            blocks = proj[:, :done].view(self.k, n - 1, c).transpose(0, 1)  # [n-1, k, c]
            per_block = blocks @ x[:, :, :done].reshape(b, h, n - 1, c, d)  # [B,H,n-1,k,d]
            prefix = per_block.cumsum(dim=2)  # block j sees blocks < j
            return F.pad(prefix, (0, 0, 0, 0, 1, 0))  # block 0: zero slots, masked below

        def own(x: torch.Tensor) -> torch.Tensor:
            return F.pad(x, (0, 0, 0, n * c - t)).view(b, h, n, c, d)

        keys = torch.cat((summaries(k, self.e), own(k)), dim=3).view(b * h, n, 2 * c, d)
        values = torch.cat((summaries(v, self.f), own(v)), dim=3).view(b * h, n, 2 * c, d)
        queries = own(q).view(b * h, n, c, d)
        y = F.scaled_dot_product_attention(
            queries, keys, values, attn_mask=_causal_block_mask(n, c, q.device)
        )
        # reshape, not view: CUDA's fused kernels may return y with strides a view cannot merge
        return y.reshape(b, h, n * c, d)[:, :, :t]


def _causal_block_mask(blocks: int, size: int, device: torch.device) -> torch.Tensor:
    """[1, blocks, size, 2*size]: summary slots from block 1 on, then a causal mask on the block.

    Padding keys sit after every real query of the last block, so the causal part hides them.
    """
    summary = (torch.arange(blocks, device=device) > 0)[:, None, None].expand(-1, size, size)
    own = torch.ones(size, size, dtype=torch.bool, device=device).tril()
    mask = torch.cat((summary, own.expand(blocks, -1, -1)), dim=2)
    return mask[None]  # 4-D: a 3-D mask sends CPU SDPA to its slow unfused math path
