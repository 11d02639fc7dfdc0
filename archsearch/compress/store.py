"""A compressed model in safetensors, and the model rebuilt from it.

Safetensors holds plain tensors and a string-to-string header, so loading runs no code from the
file (no pickle). The layout (``FORMAT``):

- float tensors under their ``state_dict`` names, each shared tensor once (``aliases`` in the
  header lists the other names: a tied output layer, layers shared ALBERT-style);
- each int8 Linear's weight as ``<module>.weight::int8`` (int8), with its scale and zero point
  at the same index in ``::scales`` (float32) and ``::zero_points`` (int32); the header's
  ``int8`` lists the modules in that order; a bias, if any, as ``<module>.bias``;
- a pruned weight (header ``pruned``) as its kept values only (``...::int8`` or
  ``<name>::values``) plus ``<name>::mask``, one bit per weight (numpy ``packbits`` order);
  ``shapes`` in the header gives its shape;
- ``arch`` (the ArchConfig), ``compression`` (what was done) in the header.

Without pruning the data bytes are exactly ``weight_bytes_int8`` (profiles): int8 weights, 8
bytes per int8 tensor, 4 per float parameter and buffer byte. The JSON header comes on top.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from archsearch.config import ArchConfig
from archsearch.errors import InputError

FORMAT = "archsearch-compressed-v1"


def _pack(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(mask.flatten().numpy()))


def _unpack(packed: torch.Tensor, shape: list[int]) -> torch.Tensor:
    count = int(np.prod(shape))
    bits = np.unpackbits(packed.numpy(), count=count).astype(bool)
    return torch.from_numpy(bits).view(shape)


def _storage_key(tensor: torch.Tensor) -> tuple[Any, ...]:
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))


def compressed_tensors(
    model: nn.Module, config: ArchConfig, pruned: list[str], info: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and header ``save_compressed`` writes."""
    from archsearch.compress.quantize import int8_modules, int8_weight

    quantized = int8_modules(model)
    under_int8 = _int8_paths(model)
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    shapes: dict[str, list[int]] = {}
    seen: dict[tuple[Any, ...], str] = {}
    pruned_weights = {f"{name}.weight" for name in pruned}
    for key, value in model.state_dict(keep_vars=False).items():
        if key.startswith(under_int8):
            continue  # packed int8 parameters: written below
        if not isinstance(value, torch.Tensor):
            continue
        found = seen.get(_storage_key(value))
        if found is not None:
            aliases[key] = found
            continue
        seen[_storage_key(value)] = key
        if key in pruned_weights:
            mask = value != 0
            tensors[f"{key}::mask"] = _pack(mask)
            tensors[f"{key}::values"] = value[mask].contiguous()
            shapes[key] = list(value.shape)
        else:
            tensors[key] = value.detach().contiguous()
    scales, zero_points = [], []
    for name, module in quantized.items():
        values, scale, zero_point = int8_weight(module)
        scales.append(scale)
        zero_points.append(zero_point)
        if name in pruned and zero_point == 0:
            mask = values != 0
            tensors[f"{name}.weight::mask"] = _pack(mask)
            tensors[f"{name}.weight::int8"] = values[mask].contiguous()
            shapes[f"{name}.weight"] = list(values.shape)
        else:
            tensors[f"{name}.weight::int8"] = values.contiguous()
        bias = module.bias()
        if bias is not None:
            tensors[f"{name}.bias"] = bias.detach().contiguous()
    if quantized:
        tensors["::scales"] = torch.tensor(scales, dtype=torch.float32)
        tensors["::zero_points"] = torch.tensor(zero_points, dtype=torch.int32)
    header = {
        "format": FORMAT,
        "arch": json.dumps(config.to_dict()),
        "int8": json.dumps(list(quantized)),
        "pruned": json.dumps(sorted(pruned)),
        "aliases": json.dumps(aliases),
        "shapes": json.dumps(shapes),
        "compression": json.dumps(info),
    }
    return tensors, header


def save_compressed(
    model: nn.Module,
    config: ArchConfig,
    path: Path,
    *,
    pruned: list[str] | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (float, pruned and/or int8) to ``path``; returns the path."""
    from safetensors.torch import save_file

    tensors, header = compressed_tensors(model, config, list(pruned or ()), dict(info or {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=header)
    return path


def _int8_paths(model: nn.Module) -> tuple[str, ...]:
    """Prefixes of every path to an int8 Linear (a module shared by layers has several)."""
    from archsearch.compress.quantize import int8_modules

    modules = set(map(id, int8_modules(model).values()))
    return tuple(
        f"{name}."
        for name, module in model.named_modules(remove_duplicate=False)
        if id(module) in modules
    )


def data_bytes(path: Path) -> int:
    """Bytes of tensor data in a safetensors file (the file less its 8-byte length and JSON
    header)."""
    with open(path, "rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
    return path.stat().st_size - 8 - header


def load_compressed(path: Path) -> tuple[nn.Module, ArchConfig, dict[str, Any]]:
    """Rebuild the model ``save_compressed`` wrote: (model in eval mode, config, compression)."""
    from safetensors import safe_open

    from archsearch.compress.quantize import int8_modules, quantize_int8, set_int8_weight
    from archsearch.models import build_model

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise InputError(f"no file at {path}", key="--weights") from None
    except Exception as exc:  # safetensors raises its own error types for a broken file
        raise InputError(f"cannot read {path}: {exc}", key="--weights") from None
    if header.get("format") != FORMAT:
        raise InputError(
            f"{path} is not an archsearch compressed model ({FORMAT})", key="--weights"
        )
    config = ArchConfig.from_dict(json.loads(header["arch"]))
    int8_names: list[str] = json.loads(header["int8"])
    aliases: dict[str, str] = json.loads(header["aliases"])
    shapes: dict[str, list[int]] = json.loads(header["shapes"])

    def dense(key: str, suffix: str) -> torch.Tensor:
        if key in shapes:
            mask = _unpack(tensors[f"{key}::mask"], shapes[key])
            full = torch.zeros(shapes[key], dtype=tensors[f"{key}{suffix}"].dtype)
            full[mask] = tensors[f"{key}{suffix}"]
            return full
        return tensors[f"{key}{suffix}" if suffix == "::int8" else key]

    model = build_model(config, seed=0).eval()
    modules = dict(model.named_modules(remove_duplicate=False))
    shared = {id(modules[name]) for name in int8_names if name in modules}
    under_int8 = tuple(f"{name}." for name, module in modules.items() if id(module) in shared)
    state = {}
    for key in model.state_dict():
        if key.startswith(under_int8):
            continue
        state[key] = dense(aliases.get(key, key), "::values")
    missing, unexpected = model.load_state_dict(state, strict=False)
    leftover = [k for k in missing if not k.startswith(under_int8)]
    if leftover or unexpected:
        raise InputError(
            f"{path} does not match its architecture ({leftover or unexpected})", key="--weights"
        )
    if int8_names:
        model = quantize_int8(model, int8_names)
        quantized = int8_modules(model)
        for index, name in enumerate(int8_names):
            values = dense(f"{name}.weight", "::int8")
            scale = float(tensors["::scales"][index])
            zero_point = int(tensors["::zero_points"][index])
            bias = tensors.get(f"{name}.bias")
            set_int8_weight(quantized[name], values, scale, zero_point, bias)
    return model.eval(), config, json.loads(header["compression"])
