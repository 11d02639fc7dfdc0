"""Hand a searched architecture to other trainers: YAML/JSON, PyTorch, ONNX, Hugging Face.

Every format carries the provenance block (``export.provenance``) and a file name that says
which study and trial it holds and how many MACs it costs (``export.naming``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.search import trial_attrs as attrs

if TYPE_CHECKING:  # an exported Hugging Face model imports this package, and needs no Optuna
    import optuna

FORMATS = ("yaml", "json", "pytorch", "onnx", "hf")


def export_trial(study: optuna.Study, spec: str | int, fmt: str, out: Path) -> list[Path]:
    """Write trial ``spec`` (``best`` or a number) of ``study`` to ``out`` in format ``fmt``."""
    from archsearch.export.naming import export_stem
    from archsearch.export.provenance import provenance
    from archsearch.export.select import BEST, best_meaning, select_trial
    from archsearch.export.weights import recipe_seed

    if fmt not in FORMATS:
        raise InputError(f"must be one of {', '.join(FORMATS)}, got {fmt!r}", key="--format")
    trial = select_trial(study, spec)
    try:
        config = ArchConfig.from_dict(trial.user_attrs[attrs.ARCH])
    except InputError as exc:
        raise exc.under(f"trial {trial.number} arch") from None
    chosen = f"best: {best_meaning(study)}" if str(spec).lower() == BEST else "by trial number"
    prov = provenance(study, trial, selected_as=chosen)
    stem, seed = export_stem(study, trial), recipe_seed(study)
    if fmt == "yaml":
        from archsearch.export.config_file import write_yaml

        return [write_yaml(config, prov, out / f"{stem}.yaml")]
    if fmt == "json":
        from archsearch.export.config_file import write_json

        return [write_json(config, prov, out / f"{stem}.json")]
    if fmt == "pytorch":
        from archsearch.export.pytorch import write_pytorch

        return write_pytorch(config, prov, out, stem, seed)
    if fmt == "onnx":
        from archsearch.export.config_file import write_yaml
        from archsearch.export.onnx_model import write_onnx

        return [
            write_onnx(config, prov, out / f"{stem}.onnx", seed),
            write_yaml(config, prov, out / f"{stem}.yaml"),
        ]
    from archsearch.export.huggingface import write_hf

    return write_hf(config, prov, out / f"{stem}-hf", seed)
