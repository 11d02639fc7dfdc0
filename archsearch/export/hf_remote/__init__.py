"""The Hugging Face code of ``archsearch export --format hf``, copied into every export.

The two modules import ``transformers``; import them (or call ``register``) only when it is
installed.
"""

from __future__ import annotations


def register() -> None:
    """Teach transformers' Auto classes the ``archsearch`` model type, so an export loads
    without ``trust_remote_code`` in a process that has archsearch installed."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from archsearch.export.hf_remote.configuration_archsearch import ArchsearchConfig
    from archsearch.export.hf_remote.modeling_archsearch import ArchsearchForCausalLM

    AutoConfig.register(ArchsearchConfig.model_type, ArchsearchConfig, exist_ok=True)
    AutoModelForCausalLM.register(ArchsearchConfig, ArchsearchForCausalLM, exist_ok=True)
