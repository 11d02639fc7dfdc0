"""Architectures as text for tables: a compact form that fits an 80-column terminal, and the
whole of it (``--wide``, JSON).

The compact form names each layer by its families (``lsra/dense``, ``local/moe8``) and collapses
runs of identical layers (``4×lsra/dense``); widths other than ``d_model`` and the family
settings (heads, ratios, windows, kernels) are left to the wide form.
"""

from __future__ import annotations

from typing import Any

# the wide form's keys, in the order a reader scans them
WIDE_KEYS = (
    "encoder_d_model",
    "heads",
    "cross_heads",
    "cross_layers",
    "attention",
    "ffn",
    "ffn_ratio",
    "ffn_dim",
    "embed_dim",
    "memory",
)

_ATTENTION = {"linformer": "lin", "performer": "perf"}


def wide_arch(arch: dict[str, Any]) -> str:
    """A one-line description: layers, width, then every per-layer choice as given."""
    parts = [f"L={arch.get('n_layers')}", f"d={arch.get('d_model')}"]
    for key in WIDE_KEYS:
        if key in arch and arch[key] is not None:
            parts.append(f"{key}={arch[key]}")
    return " ".join(str(p) for p in parts)


def compact_arch(arch: dict[str, Any]) -> str:
    """Width, embedding factorization and memory, then the decoder's (and encoder's) layers by
    family with identical neighbours collapsed: ``d256 6×lsra/dense``."""
    parts = [f"d{arch.get('d_model')}"]
    if arch.get("embed_dim"):
        parts.append(f"e{arch['embed_dim']}")
    if arch.get("memory") not in (None, "none"):
        parts.append(f"{arch['memory']}{arch.get('mem_len', '')}")
    if arch.get("share_layers"):
        parts.append("shared")
    if arch.get("n_encoder_layers"):
        width = arch.get("encoder_d_model")
        enc = "enc" if width in (None, arch.get("d_model")) else f"enc d{width}"
        parts.append(f"{enc} " + _stack(arch, int(arch["n_encoder_layers"]), "encoder_"))
        parts.append("dec")
    if arch.get("n_layers") is not None:
        parts.append(_stack(arch, int(arch["n_layers"]), ""))
    return " ".join(parts)


def _stack(arch: dict[str, Any], count: int, prefix: str) -> str:
    names = [_layer(arch, index, count, prefix) for index in range(count)]
    runs: list[tuple[str, int]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return " ".join(name if n == 1 else f"{n}×{name}" for name, n in runs) or "0 layers"


def _layer(arch: dict[str, Any], index: int, count: int, prefix: str) -> str:
    def value(key: str, default: Any = None) -> Any:
        found = arch.get(prefix + key, default)
        if isinstance(found, list):
            return found[index] if index < len(found) else default
        return found

    attention = str(value("attention", "full"))
    attention = _ATTENTION.get(attention, attention)
    ffn = str(value("ffn", "dense"))
    if ffn == "switch_moe":
        ffn = f"moe{value('experts', '')}"
    elif ffn == "sparse":
        ffn = f"sparse{value('sparsity', '')}"
    return f"{attention}/{ffn}"
