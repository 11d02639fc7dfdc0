"""The int8 model as an ONNX graph: onnxruntime's dynamic quantization of the float graph.

onnxruntime's ``quantize_dynamic`` rewrites chosen MatMul nodes into int8 weights (one scale
per tensor, symmetric) with activations quantized on the fly, as PyTorch's dynamic int8 Linear
does. The exporter folds each weight into an anonymous (transposed) initializer, so the nodes
are chosen by value: a MatMul (or Gemm, rewritten as MatMul, for which onnxruntime has no
integer kernel) whose constant operand equals the (transposed) weight of a linear
PyTorch quantizes (``linears.quantizable``) is quantized; the rest (a tied output layer, the
sparse FFN's gathered weights, attention's own products) stay float, as in PyTorch. The two
int8 models round differently (onnxruntime quantizes activations to uint8 with a zero point;
PyTorch's fbgemm kernels use a reduced range), so they agree within quantization noise, not
bit for bit: ``tests/test_compress.py`` states the tolerance.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn


def _quantizable_weights(float_model: nn.Module) -> dict[tuple[int, ...], list[torch.Tensor]]:
    """The [out, in] weights of the linears PyTorch quantizes, by shape."""
    from archsearch.compress.linears import quantizable

    modules = dict(float_model.named_modules())
    wanted: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for name in quantizable(float_model):
        weight = modules[name].weight.detach()
        wanted.setdefault(tuple(weight.shape), []).append(weight)
    return wanted


def _chosen(proto: Any, wanted: dict[tuple[int, ...], list[torch.Tensor]]) -> list[str]:
    """Rewrite each Gemm over a wanted weight as MatMul (+ Add), which onnxruntime's dynamic
    quantization handles (it has no integer Gemm), and name every MatMul over one."""
    from onnx import helper, numpy_helper

    constants = {init.name: init for init in proto.graph.initializer}

    def matches(name: str, transposed: bool) -> bool:
        if name not in constants:
            return False
        value = torch.from_numpy(numpy_helper.to_array(constants[name]).copy())
        if value.dim() != 2:  # a batched constant (SparseFinder's finder, infinity's placement)
            return False
        value = value.t() if transposed else value
        return any(torch.equal(value, w) for w in wanted.get(tuple(value.shape), []))

    chosen, nodes = [], []
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        if (
            node.op_type == "Gemm"
            and plain
            and not attrs.get("transA", 0)
            and matches(node.input[1], transposed=not attrs.get("transB", 0))
        ):
            weight = numpy_helper.to_array(constants[node.input[1]])
            weight = weight.T.copy() if attrs.get("transB", 0) else weight
            name = f"{node.input[1]}__for_matmul"
            if name not in constants:
                constants[name] = numpy_helper.from_array(weight, name)
                proto.graph.initializer.append(constants[name])
            product = node.output[0] if len(node.input) < 3 else f"{node.output[0]}__product"
            nodes.append(helper.make_node("MatMul", [node.input[0], name], [product], node.name))
            if len(node.input) >= 3:
                nodes.append(helper.make_node("Add", [product, node.input[2]], node.output))
            chosen.append(node.name)
            continue
        if node.op_type == "MatMul" and matches(node.input[1], transposed=True):
            chosen.append(node.name)
        nodes.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return chosen


def write_int8_onnx(float_graph: Path, path: Path, float_model: nn.Module) -> Path:
    """Quantize ``float_graph`` (exported from ``float_model``) to ``path``: int8 weights for
    the linears PyTorch quantizes."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(float_graph))
    nodes = _chosen(proto, _quantizable_weights(float_model))
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".float.tmp")
    onnx.save(proto, str(staged))
    logging.disable(logging.WARNING)  # it advises pre-processing on the root logger, every time
    try:
        quantize_dynamic(
            str(staged),
            str(path),
            weight_type=QuantType.QInt8,
            per_channel=False,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=nodes,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        logging.disable(logging.NOTSET)
        staged.unlink(missing_ok=True)
    return path
