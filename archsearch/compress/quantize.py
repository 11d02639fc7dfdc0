"""Dynamic int8 quantization of a model's linear layers with PyTorch's own API.

``torch.ao.quantization.quantize_dynamic`` stores each chosen Linear's weight as int8 with one
scale per tensor (symmetric, zero point 0) and quantizes activations on the fly, per batch.
PyTorch 2.13 marks ``torch.ao.quantization`` deprecated in favour of torchao; it is still the
API that ships with torch, so its deprecation warnings are silenced here.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from archsearch.compress.linears import quantizable


def quantize_int8(model: nn.Module, names: Sequence[str] | None = None) -> nn.Module:
    """An int8 copy of ``model`` (eval mode): the linears ``names`` (default: ``quantizable``)
    become dynamic int8 Linears; everything else stays float32."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    source = copy.deepcopy(model).eval()
    chosen = quantizable(source) if names is None else list(names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(
            source, {name: default_dynamic_qconfig for name in chosen}, dtype=torch.qint8
        )


def int8_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The dynamic int8 Linears of a quantized model, by name (each shared module once)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return {n: m for n, m in model.named_modules() if isinstance(m, DynamicLinear)}


def int8_weight(module: nn.Module) -> tuple[torch.Tensor, float, int]:
    """(int8 values, scale, zero point) of a dynamic int8 Linear's weight."""
    weight = module.weight()
    return weight.int_repr(), float(weight.q_scale()), int(weight.q_zero_point())


def set_int8_weight(
    module: nn.Module,
    values: torch.Tensor,
    scale: float,
    zero_point: int,
    bias: torch.Tensor | None,
) -> None:
    """Give a dynamic int8 Linear exactly these int8 weights (a rebuilt model's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weight = torch._make_per_tensor_quantized_tensor(values, scale, zero_point)
        module.set_weight_bias(weight, bias)
