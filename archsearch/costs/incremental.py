"""Incremental decoding with a key/value cache, built from a model's own modules.

The models have no cache API (they are written to be read and trained, not served), so
per-token generation latency would otherwise have to re-run the whole prefix for every token.
For the families whose attention reads naturally from a cache, this module decodes one token at
a time by calling the block's own submodules (norms, projections, FFN, head) and keeping each
layer's rotated keys and values:

- ``full``: every cached key;
- ``local`` (causal, no global tokens): the last ``window * dilation + 1`` keys, those on the
  query's dilation grid;
- ``lsra``: the attention branch as ``full``, the convolution branch from the last
  ``conv_kernel`` GLU outputs.

Feed-forward families are position-wise and run as they are (a switch-MoE layer with fewer
tokens than experts gives each token its own capacity, so a cached decode can differ from the
full forward where the full forward would overflow an expert). Everything else (Linformer,
Performer, LSH, recurrent memory, seq2seq) is timed by re-running the prefix; ``supports``
says which, and the latency report names the method used.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from archsearch.config import ArchConfig, LayerConfig
from archsearch.families import specs
from archsearch.families.retrieval import retrieves
from archsearch.models.attention.common import merge_heads, split_heads
from archsearch.models.positions import rotary

CACHED_ATTENTION = tuple(spec.name for spec in specs("attention").values() if spec.kv_cache)


def supports(config: ArchConfig) -> bool:
    """Whether every layer can decode from a cache here (else: re-run the prefix). Not for
    recurrent memory, post-norm blocks, nor retrieval (each new chunk brings new neighbours)."""
    if config.task != "causal_lm" or config.memory != "none" or config.norm != "pre":
        return False
    if retrieves(config):
        return False
    return all(
        layer.attention in CACHED_ATTENTION and layer.global_tokens == 0 for layer in config.layers
    )


def _keep(layer: LayerConfig) -> int | None:
    """Keys a layer can still attend to: all (None), or a local window's reach."""
    return layer.window * layer.dilation + 1 if layer.attention == "local" else None


class _LayerCache:
    """Rotated keys and values [B, H, S, d] of one layer (and LSRA's convolution inputs)."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.conv: torch.Tensor | None = None  # [B, S, C], the last conv_kernel GLU outputs

    def append(self, k: torch.Tensor, v: torch.Tensor, keep: int | None) -> None:
        if self.keys is None or self.values is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat((self.keys, k), dim=2)
            self.values = torch.cat((self.values, v), dim=2)
        if keep is not None and self.keys.shape[2] > keep:
            self.keys = self.keys[:, :, -keep:]
            self.values = self.values[:, :, -keep:]


class IncrementalDecoder:
    """Greedy-decoding state for one ``CausalLM``: ``prefill`` a prompt, then ``step`` tokens.

    Logits equal the full forward's at every position (tests check it), up to float rounding.
    """

    def __init__(self, model: Any):
        # a CausalLM, read by its parts (embed, blocks, head): typed loosely, as nn.Module's
        # attribute access is Tensor | Module to a type checker
        config: ArchConfig = model.arch
        if not supports(config):
            raise ValueError("this architecture has no cached decoding path")
        self.model = model
        self.config = config
        self.position = 0
        self.caches = [_LayerCache() for _ in config.layers]

    @torch.no_grad()
    def prefill(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the prompt [B, T] in one pass through the blocks' own modules, caching each
        layer's keys and values; returns the last position's logits [B, V]."""
        model = self.model
        x = model.embed(tokens)
        for block, layer, cache in zip(model.blocks, self.config.layers, self.caches, strict=True):
            h = block.attn_norm(x)
            if layer.attention == "lsra":
                width = block.attn.attn_width
                _, k, v = block.attn.proj.qkv(h[..., :width], None)
                cache.append(k, v, None)
                if block.attn.conv is not None and layer.conv_kernel > 1:
                    glu = F.glu(block.attn.conv.glu(h[..., width:]), dim=-1)
                    cache.conv = glu[:, -(layer.conv_kernel - 1) :]
            else:
                _, k, v = block.attn.proj.qkv(h, None)
                cache.append(k, v, _keep(layer))
            x = x + block.attn(h)
            y, _ = block.ffn(block.ffn_norm(x))
            x = x + y
        self.position = tokens.shape[1]
        return model.head(x)[:, -1]

    @torch.no_grad()
    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Feed one token per sequence [B, 1]; returns next-token logits [B, V]."""
        model = self.model
        x = model.embed(token)
        for block, layer, cache in zip(model.blocks, self.config.layers, self.caches, strict=True):
            h = block.attn_norm(x)
            if layer.attention == "lsra":
                x = x + self._lsra(block.attn, layer, h, cache)
            else:
                x = x + self._attend(block.attn.proj, h, cache, _keep(layer), layer.dilation)
            y, _ = block.ffn(block.ffn_norm(x))
            x = x + y
        self.position += 1
        return model.head(x)[:, -1]

    def _attend(
        self,
        proj: Any,
        h: torch.Tensor,
        cache: _LayerCache,
        keep: int | None,
        dilation: int,
    ) -> torch.Tensor:
        q = rotary(split_heads(proj.q(h), proj.heads), self.position)
        k = rotary(split_heads(proj.k(h), proj.heads), self.position)
        v = split_heads(proj.v(h), proj.heads)
        cache.append(k, v, keep)
        assert cache.keys is not None and cache.values is not None
        keys, values = cache.keys, cache.values
        if dilation > 1:  # the keys on the query's grid (order does not matter to attention)
            keys, values = keys.flip(2)[:, :, ::dilation], values.flip(2)[:, :, ::dilation]
        y = F.scaled_dot_product_attention(q, keys, values)
        return proj.out(merge_heads(y))

    def _lsra(
        self, module: Any, layer: LayerConfig, h: torch.Tensor, cache: _LayerCache
    ) -> torch.Tensor:
        width = module.attn_width
        attended = self._attend(module.proj, h[..., :width], cache, None, 1)
        if module.conv is None:
            return attended
        branch = module.conv
        g = F.glu(branch.glu(h[..., width:]), dim=-1)  # [B, 1, C]
        history = g if cache.conv is None else torch.cat((cache.conv, g), dim=1)
        kernel = layer.conv_kernel
        cache.conv = history[:, -(kernel - 1) :] if kernel > 1 else history[:, :0]
        window = F.pad(history[:, -kernel:], (0, 0, kernel - history[:, -kernel:].shape[1], 0))
        conv = branch.conv
        b, _, c = g.shape
        groups = conv.groups
        if hasattr(conv, "weight"):  # lightweight: one softmax kernel per group
            weights = F.softmax(conv.weight, dim=-1)  # [H, K]
            weights = weights.repeat_interleave(c // groups, dim=0)  # [C, K]
            mixed = torch.einsum("bkc,ck->bc", window, weights)
        else:  # dynamic: the kernel is predicted from the newest position
            weights = F.softmax(conv.predict(g).view(b, groups, kernel), dim=-1)
            grouped = window.view(b, kernel, groups, c // groups)
            mixed = torch.einsum("bkgc,bgk->bgc", grouped, weights).reshape(b, c)
        return torch.cat((attended, branch.out(mixed.unsqueeze(1))), dim=-1)
