"""``--format hf``: a folder that ``transformers`` loads with its Auto classes.

``config.json`` (model type ``archsearch``: the flat architecture plus provenance),
``model.safetensors`` (the trial's starting weights) and the two remote-code files of
``archsearch/export/hf_remote``, which wrap ``archsearch.build_model``. Load it with::

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

The remote code imports ``archsearch``, so the package must be installed where the model is
loaded; or call ``archsearch.export.hf_remote.register()`` and load without remote code.
Token ids are the evaluator's (bytes: 0..255); archsearch ships no Hugging Face tokenizer.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.export.provenance import headline
from archsearch.export.weights import initial_model
from archsearch.families.retrieval import retrieves

EXTRA_HINT = "pip install 'archsearch[export]'"
REMOTE_CODE = Path(__file__).with_name("hf_remote")
REMOTE_FILES = ("configuration_archsearch.py", "modeling_archsearch.py")
AUTO_MAP = {
    "AutoConfig": "configuration_archsearch.ArchsearchConfig",
    "AutoModelForCausalLM": "modeling_archsearch.ArchsearchForCausalLM",
}


def write_hf(config: ArchConfig, prov: dict[str, Any], folder: Path, seed: int) -> list[Path]:
    if config.task != "causal_lm":
        raise InputError(
            f"the hf export covers causal_lm models (AutoModelForCausalLM), not {config.task}",
            key="--format",
        )
    if retrieves(config):
        raise InputError(
            "the hf export covers models without retrieval (their neighbours come from a "
            "datastore that generate() does not have)",
            key="--format",
        )
    try:
        from archsearch.export.hf_remote.configuration_archsearch import ArchsearchConfig
        from archsearch.export.hf_remote.modeling_archsearch import ArchsearchForCausalLM
    except ImportError:
        raise InputError(f"transformers is needed: {EXTRA_HINT}", key="--format") from None
    hf_config = ArchsearchConfig(arch=config.to_dict(), provenance=prov)
    hf_config.auto_map = dict(AUTO_MAP)
    hf_config.architectures = [ArchsearchForCausalLM.__name__]
    model = ArchsearchForCausalLM(hf_config)
    model.model.load_state_dict(initial_model(config, seed).state_dict())
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    for name in REMOTE_FILES:
        shutil.copyfile(REMOTE_CODE / name, folder / name)
    (folder / "README.md").write_text(model_card(prov))
    return sorted(folder.iterdir())


def model_card(prov: dict[str, Any]) -> str:
    """What the folder holds and how to load and train it."""
    return "\n".join(
        [
            f"# {prov['study']} trial {prov['trial']} (archsearch export)",
            "",
            f"{headline(prov)}.",
            "The weights are the ones the search trained this architecture from (the evaluator's",
            "seed), not trained weights: train it with your own loop or `transformers.Trainer`.",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM",
            "model = AutoModelForCausalLM.from_pretrained(FOLDER, trust_remote_code=True)",
            "out = model(input_ids=ids, labels=ids)  # out.loss, out.logits",
            "```",
            "",
            "The remote code imports `archsearch` (`pip install archsearch`). Token ids are those",
            f"of the evaluator's tokenizer ({(prov.get('evaluator') or {}).get('tokenizer', '?')});"
            " padding must be on the right. Provenance: `provenance` in `config.json`.",
            "",
        ]
    )
