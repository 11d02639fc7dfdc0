"""ArchConfig: the one validated description of an architecture.

Everything downstream (models, costs, evaluators, export) reads an ``ArchConfig`` and never the
YAML it came from. The flat dictionary form (``from_dict`` / ``to_dict``) is what search spaces
produce and what exports write: global keys plus per-layer keys that are either one value for
every layer or a list with one value per layer. Encoder layers of a seq2seq model take
``encoder_<key>`` when given and the decoder's (scalar) value otherwise; the cross-attention keys
(``cross_heads``, ``cross_layers``) belong to decoder layers only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from archsearch.checks import check_integer, check_number
from archsearch.errors import InputError, yaml_key
from archsearch.families import all_specs, attention_spec, ffn_spec, names, specs
from archsearch.families.lsra import CONV_TYPES
from archsearch.families.settings import check_choice as _check_choice

TASKS = ("causal_lm", "seq2seq")
ATTENTION_KINDS = names("attention")
FFN_KINDS = names("ffn")
MEMORY_KINDS = names("memory")
CONV_KINDS = CONV_TYPES
ACTIVATIONS = ("gelu", "relu")
NORMS = ("pre", "post")  # pre-norm blocks (GPT-2) or post-norm blocks (fairseq's Transformer)
# Encoder layers HAT's cross-attention may read, joined along the sequence: the last 1, 2 or 3.
MAX_CROSS_LAYERS = 3
COMPRESS_FNS = ("mean", "conv")
# The most blocks in one stack. Far beyond any model archsearch can train (GPT-3 has 96), and low
# enough that a mistyped count (1000000) is refused at once instead of built block by block.
MAX_LAYERS = 1024


class _LayerMethods:
    """Checks and derived widths of ``LayerConfig``, whose fields come from the family specs."""

    def __post_init__(self) -> None:
        layer: Any = self
        _check_choice("attention", layer.attention, ATTENTION_KINDS)
        _check_choice("ffn", layer.ffn, FFN_KINDS)
        _check_choice("activation", layer.activation, ACTIVATIONS)
        _check_bool("retrieve", layer.retrieve)
        check_integer("heads", layer.heads, minimum=1)
        check_integer("cross_layers", layer.cross_layers, minimum=1, maximum=MAX_CROSS_LAYERS)
        for name in ("attn_dim", "ffn_dim", "cross_heads"):
            if getattr(layer, name) is not None:
                check_integer(name, getattr(layer, name), minimum=1)
        check_number("ffn_ratio", layer.ffn_ratio, low=0.0, low_open=True)
        for spec in all_specs():
            for setting in spec.settings:
                setting.check(setting.name, getattr(layer, setting.name))
        attention_spec(layer.attention).check_layer(layer)
        ffn_spec(layer.ffn).check_layer(layer)

    def qkv_dim(self, d_model: int) -> int:
        """Width of the query/key/value projections."""
        layer: Any = self
        return int(layer.attn_dim) if layer.attn_dim is not None else d_model

    def hidden_dim(self, d_model: int) -> int:
        """Width of the feed-forward hidden layer."""
        layer: Any = self
        if layer.ffn_dim is not None:
            return int(layer.ffn_dim)
        return max(1, round(layer.ffn_ratio * d_model))

    @property
    def cross_head_count(self) -> int:
        """Heads of the cross-attention (seq2seq decoder): the self-attention's unless set."""
        layer: Any = self
        return int(layer.cross_heads) if layer.cross_heads is not None else int(layer.heads)


def _layer_fields() -> list[tuple[str, Any, Any]]:
    """The per-layer keys: each kind's common ones, then every family's settings, in order."""
    out: list[tuple[str, Any, Any]] = [
        ("attention", "str", field(default="full")),
        ("heads", "int", field(default=4)),
        ("attn_dim", "int | None", field(default=None)),  # q/k/v width (HAT's qkv_dim)
        # RETRO: chunked cross-attention to retrieved neighbours (needs retrieval_chunk > 0)
        ("retrieve", "bool", field(default=False)),
        # seq2seq decoder layers: cross-attention heads (None = heads) and how many of the last
        # encoder layers it reads, joined along the sequence (HAT's arbitrary enc-dec attention)
        ("cross_heads", "int | None", field(default=None)),
        ("cross_layers", "int", field(default=1)),
    ]
    for spec in specs("attention").values():
        out += [(s.name, s.annotation, field(default=s.default)) for s in spec.settings]
    out += [
        ("ffn", "str", field(default="dense")),
        ("ffn_dim", "int | None", field(default=None)),  # None = round(ffn_ratio * d_model)
        ("ffn_ratio", "float", field(default=4.0)),
        ("activation", "str", field(default="gelu")),
    ]
    for spec in specs("ffn").values():
        out += [(s.name, s.annotation, field(default=s.default)) for s in spec.settings]
    return out


if TYPE_CHECKING:

    class LayerConfig(_LayerMethods):
        """One Transformer block (see the runtime definition below)."""

        attention: str
        heads: int
        attn_dim: int | None
        retrieve: bool
        cross_heads: int | None
        cross_layers: int
        ffn: str
        ffn_dim: int | None
        ffn_ratio: float
        activation: str

        def __init__(self, **settings: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...  # a family's setting

        @property
        def cross_head_count(self) -> int: ...

else:
    LayerConfig = make_dataclass(
        "LayerConfig",
        _layer_fields(),
        bases=(_LayerMethods,),
        frozen=True,
        namespace={
            "__doc__": "One Transformer block. Fields of families a layer does not use keep "
            "their defaults; each family's spec (``archsearch.families``) declares its own."
        },
    )
    LayerConfig.__module__ = __name__  # pickles (Ray) find it here


LAYER_KEYS = tuple(f.name for f in fields(cast(Any, LayerConfig)))
# Per-layer keys only a seq2seq decoder layer has (there is no encoder_cross_heads).
DECODER_ONLY_KEYS = ("cross_heads", "cross_layers")
ENCODER_LAYER_KEYS = tuple(k for k in LAYER_KEYS if k not in DECODER_ONLY_KEYS)


@dataclass(frozen=True)
class ArchConfig:
    """A whole model: global settings plus one ``LayerConfig`` per block."""

    layers: tuple[LayerConfig, ...] = field(default_factory=lambda: (LayerConfig(),) * 2)
    task: str = "causal_lm"
    vocab_size: int = 256
    max_seq_len: int = 256
    d_model: int = 128  # the decoder's width (and a causal LM's)
    encoder_d_model: int | None = None  # seq2seq: the encoder's width; None = d_model
    embed_dim: int | None = None  # ALBERT factorized embedding width; None = d_model, no projection
    tie_embeddings: bool = True
    share_layers: bool = False  # ALBERT cross-layer sharing: every block uses layer 0's weights
    dropout: float = 0.0
    memory: str = "none"
    mem_len: int = 0  # Transformer-XL / compressive: tokens of recurrent memory per layer
    compress_rate: int = 4  # compressive: old memories per compressed slot
    compress_len: int = 0  # compressive: compressed slots per layer
    compress_fn: str = "mean"
    ltm_basis: int = 0  # infinity: radial basis functions the long-term memory is fitted with
    ltm_samples: int = 0  # infinity: points the Gaussian read evaluates the memory at
    retrieval_chunk: int = 0  # RETRO: tokens per retrieval chunk; 0 = no retrieval
    retrieval_k: int = 2  # RETRO: neighbours retrieved per chunk
    bias: bool = False  # biases on every linear of attention and FFN (fairseq's Transformer)
    norm: str = "pre"  # "pre": x + f(norm(x)) (GPT-2); "post": norm(x + f(x)) (fairseq)
    encoder_layers: tuple[LayerConfig, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("task", self.task, TASKS)
        _check_choice("memory", self.memory, MEMORY_KINDS)
        _check_choice("compress_fn", self.compress_fn, COMPRESS_FNS)
        _check_choice("norm", self.norm, NORMS)
        _check_bool("bias", self.bias)
        check_integer("vocab_size", self.vocab_size, minimum=2)
        check_integer("max_seq_len", self.max_seq_len, minimum=1)
        check_integer("d_model", self.d_model, minimum=1)
        if self.encoder_d_model is not None:
            check_integer("encoder_d_model", self.encoder_d_model, minimum=1)
        if self.embed_dim is not None:
            check_integer("embed_dim", self.embed_dim, minimum=1)
        _check_bool("tie_embeddings", self.tie_embeddings)
        _check_bool("share_layers", self.share_layers)
        check_number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_integer("mem_len", self.mem_len, minimum=0)
        check_integer("compress_rate", self.compress_rate, minimum=1)
        check_integer("compress_len", self.compress_len, minimum=0)
        check_integer("ltm_basis", self.ltm_basis, minimum=0)
        check_integer("ltm_samples", self.ltm_samples, minimum=0)
        check_integer("retrieval_chunk", self.retrieval_chunk, minimum=0)
        check_integer("retrieval_k", self.retrieval_k, minimum=1)
        if not isinstance(self.layers, tuple) or not self.layers:
            raise InputError("a model needs at least one layer", key="n_layers")
        if self.task == "seq2seq" and not self.encoder_layers:
            raise InputError("a seq2seq model needs n_encoder_layers >= 1", key="n_encoder_layers")
        if self.task == "causal_lm" and self.encoder_layers:
            raise InputError("a causal_lm model has no encoder", key="n_encoder_layers")
        if self.task == "causal_lm" and self.encoder_d_model is not None:
            raise InputError("a causal_lm model has no encoder", key="encoder_d_model")
        self._check_cross()
        if self.memory in ("xl", "compressive") and self.mem_len < 1:
            raise InputError(f"memory '{self.memory}' needs mem_len >= 1", key="mem_len")
        if self.memory == "compressive" and self.compress_len < 1:
            raise InputError("compressive memory needs compress_len >= 1", key="compress_len")
        if self.memory == "infinity":
            for key in ("ltm_basis", "ltm_samples"):
                if getattr(self, key) < 1:
                    raise InputError(f"infinity memory needs {key} >= 1", key=key)
        if self.memory != "none" and self.task != "causal_lm":
            raise InputError("recurrent memory is supported for causal_lm only", key="memory")
        self._check_retrieval()
        for stack, width, prefix in (
            (self.layers, self.d_model, ""),
            (self.encoder_layers, self.encoder_width, "encoder_"),
        ):
            for layer in stack:
                if layer.qkv_dim(width) % layer.heads:
                    raise InputError(
                        f"attention width {layer.qkv_dim(width)} is not divisible by "
                        f"heads={layer.heads}",
                        key=prefix + "heads",
                    )
        if self.share_layers:
            for stack in (self.layers, self.encoder_layers):
                if len(set(stack)) > 1:
                    raise InputError(
                        "share_layers needs every layer of a stack to be the same",
                        key="share_layers",
                    )

    def _check_retrieval(self) -> None:
        if self.retrieval_chunk and self.task != "causal_lm":
            raise InputError("retrieval is supported for causal_lm only", key="retrieval_chunk")
        if self.retrieval_chunk > self.max_seq_len:
            raise InputError(
                f"a chunk of {self.retrieval_chunk} tokens is longer than max_seq_len="
                f"{self.max_seq_len}",
                key="retrieval_chunk",
            )
        for stack in (self.layers, self.encoder_layers):
            for index, layer in enumerate(stack):
                if layer.retrieve and not self.retrieval_chunk:
                    raise InputError(
                        f"retrieve: true needs retrieval_chunk >= 1 (layer {index})",
                        key="retrieve",
                    )

    def _check_cross(self) -> None:
        """Cross-attention keys: decoder layers of seq2seq models only, within the encoder."""
        default = _LAYER_DEFAULTS
        stacks = [(self.encoder_layers, "encoder_")]
        if self.task == "causal_lm":
            stacks.append((self.layers, ""))
        for stack, prefix in stacks:
            for key in DECODER_ONLY_KEYS:
                if any(getattr(layer, key) != getattr(default, key) for layer in stack):
                    raise InputError(
                        "only the decoder layers of a seq2seq model have cross-attention",
                        key=prefix + key,
                    )
        if self.task != "seq2seq":
            return
        for index, layer in enumerate(self.layers):
            if layer.cross_layers > self.n_encoder_layers:
                raise InputError(
                    f"layer {index} reads the last {layer.cross_layers} encoder layers but the "
                    f"encoder has {self.n_encoder_layers}",
                    key="cross_layers",
                )
            width = layer.qkv_dim(self.d_model)
            if width % layer.cross_head_count:
                raise InputError(
                    f"cross-attention width {width} is not divisible by "
                    f"cross_heads={layer.cross_head_count} (layer {index})",
                    key="cross_heads",
                )

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_encoder_layers(self) -> int:
        return len(self.encoder_layers)

    @property
    def encoder_width(self) -> int:
        """The encoder's d_model (seq2seq); the decoder's when not set apart."""
        return self.encoder_d_model if self.encoder_d_model is not None else self.d_model

    @property
    def embedding_width(self) -> int:
        return self.embed_dim if self.embed_dim is not None else self.d_model

    @property
    def causal(self) -> bool:
        """Whether the decoder stack must never see future tokens (always, for both tasks)."""
        return True

    def replace(self, **changes: Any) -> ArchConfig:
        return dataclasses.replace(self, **changes)

    # ---- flat dictionary form -------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchConfig:
        """Build from the flat form; raises ``InputError`` naming the offending key."""
        if not isinstance(data, dict):
            raise InputError("an architecture must be a mapping of keys to values")
        data = dict(data)
        global_names = {f.name for f in fields(cls)} - {"layers", "encoder_layers"}
        counts = {"n_layers", "n_encoder_layers"}
        encoder_keys = {f"encoder_{k}" for k in ENCODER_LAYER_KEYS}
        unknown = sorted(
            set(data) - global_names - counts - set(LAYER_KEYS) - encoder_keys, key=str
        )
        if unknown:
            raise InputError(f"unknown key (known: {_known_list()})", key=yaml_key(unknown[0]))
        n_layers = data.pop("n_layers", None)
        if n_layers is None:
            n_layers = _infer_count(data, LAYER_KEYS, "n_layers")
        check_integer("n_layers", n_layers, minimum=1, maximum=MAX_LAYERS)
        n_enc = data.pop("n_encoder_layers", 0)
        check_integer("n_encoder_layers", n_enc, minimum=0, maximum=MAX_LAYERS)
        decoder_values = {k: data.pop(k) for k in LAYER_KEYS if k in data}
        encoder_values = {
            k[len("encoder_") :]: data.pop(k) for k in list(data) if k in encoder_keys
        }
        layers = _build_layers(decoder_values, n_layers, prefix="")
        encoder_defaults = {
            k: v
            for k, v in decoder_values.items()
            if not isinstance(v, list) and k not in DECODER_ONLY_KEYS
        }
        for k, v in decoder_values.items():
            if k in DECODER_ONLY_KEYS:
                continue
            if isinstance(v, list) and k not in encoder_values and n_enc:
                raise InputError(
                    f"'{k}' is per-layer for the decoder; give encoder_{k} for the encoder",
                    key=f"encoder_{k}",
                )
        encoder = _build_layers({**encoder_defaults, **encoder_values}, n_enc, prefix="encoder_")
        try:
            return cls(layers=layers, encoder_layers=encoder, **data)
        except TypeError as exc:  # pragma: no cover - unknown keys are caught above
            raise InputError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """Flat form: globals, layer counts, then per-layer keys (scalar when uniform)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("layers", "encoder_layers"):
                continue
            value = getattr(self, f.name)
            if f.name in ("task", "vocab_size", "max_seq_len", "d_model") or value != f.default:
                out[f.name] = value
        out["n_layers"] = self.n_layers
        decoder = _flatten_layers(self.layers)
        out.update(decoder)
        if self.encoder_layers:
            out["n_encoder_layers"] = self.n_encoder_layers
            flat = _flatten_layers(self.encoder_layers, always=ENCODER_LAYER_KEYS)
            for key, value in flat.items():
                if key in DECODER_ONLY_KEYS:
                    continue
                inherited = decoder.get(key, getattr(_LAYER_DEFAULTS, key))
                if isinstance(inherited, list) or value != inherited:
                    out[f"encoder_{key}"] = value
        return out

    @classmethod
    def from_yaml(cls, path: str | Path) -> ArchConfig:
        """Read a flat-form YAML file; errors name the file."""
        from archsearch.yamlfile import read_yaml

        path = Path(path)
        data = read_yaml(path)
        if isinstance(data, dict) and isinstance(data.get("arch"), dict):
            data = data["arch"]  # exported files carry provenance beside the architecture
        try:
            return cls.from_dict(data)
        except InputError as exc:
            raise exc.located(str(path)) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _known_list() -> str:
    names = [f.name for f in fields(ArchConfig) if f.name not in ("layers", "encoder_layers")]
    return ", ".join(
        [*names, "n_layers", "n_encoder_layers", *LAYER_KEYS, "encoder_<layer key but cross_*>"]
    )


def _infer_count(values: dict[str, Any], keys: tuple[str, ...], name: str) -> int:
    for key in keys:
        if isinstance(values.get(key), list):
            return len(values[key])
    raise InputError("missing (or give a per-layer list to infer it from)", key=name)


def _build_layers(values: dict[str, Any], count: int, prefix: str) -> tuple[LayerConfig, ...]:
    for key, value in values.items():
        if isinstance(value, list) and len(value) != count:
            raise InputError(
                f"has {len(value)} per-layer values but the stack has {count} layers",
                key=prefix + key,
            )
    layers = []
    for index in range(count):
        kwargs = {k: (v[index] if isinstance(v, list) else v) for k, v in values.items()}
        try:
            layers.append(LayerConfig(**kwargs))
        except InputError as exc:
            exc.key = f"{prefix}{exc.key}" if exc.key else prefix.rstrip("_")
            if any(isinstance(v, list) for v in values.values()):
                exc.message = f"{exc.message} (layer {index})"
            raise
    return tuple(layers)


def _flatten_layers(layers: tuple[LayerConfig, ...], always: tuple[str, ...] = ()) -> dict:
    out: dict[str, Any] = {}
    for key in LAYER_KEYS:
        values = [getattr(layer, key) for layer in layers]
        uniform = all(v == values[0] for v in values)
        is_default = uniform and values[0] == getattr(_LAYER_DEFAULTS, key)
        if is_default and key not in always and key not in ("attention", "heads", "ffn"):
            continue
        out[key] = values[0] if uniform else values
    return out


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InputError(f"must be true or false, got {value!r}", key=name)


_LAYER_DEFAULTS = LayerConfig()
