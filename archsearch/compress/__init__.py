"""After the search: int8 quantization and pruning of a found model, measured and saved.

``linears`` says which weights a scheme touches, ``quantize`` and ``prune`` apply the schemes
(PyTorch's dynamic int8 quantization; magnitude or structured pruning with a recovery
fine-tune through the evaluator's own training loop), ``store`` saves and rebuilds a compressed
model in safetensors, ``flow`` measures float and compressed side by side (``archsearch
compress``) and ``onnx_int8`` writes the int8 ONNX graph.
"""
