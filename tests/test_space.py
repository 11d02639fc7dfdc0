"""The search-space language: validation, define-by-run sampling, per-layer semantics."""

from __future__ import annotations

import random
import time
from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import archsearch
from archsearch.builtins import list_builtins
from archsearch.config import ArchConfig, LayerConfig
from archsearch.errors import InputError
from archsearch.space import SearchSpace, load_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

LOCAL_SPACE = {
    "name": "local",
    "task": "causal_lm",
    "fixed": {"vocab_size": 32, "max_seq_len": 64},
    "params": {
        # Listed before what it depends on: suggestion order must still put attention first.
        "window": {"choice": [8, 16, 32], "when": "attention == 'local'", "per_layer": True},
        "n_layers": {"int": [1, 4]},
        "d_model": {"choice": [48, 64]},
        "heads": {"choice": [2, 3, 4], "per_layer": True},
        "attention": {"choice": ["full", "local"], "per_layer": True},
        # Reads a conditional name: off wherever window is off, even though it only tests window.
        "dilation": {"choice": [1, 2], "when": "window > 8", "per_layer": True},
        "memory": {"choice": ["none", "xl"]},
        "mem_len": {"choice": [16, 32], "when": "memory != 'none'"},
    },
    "constraints": ["d_model % heads == 0", "window >= 16"],
}


def make_space(data: dict, source: str = "space.yaml") -> SearchSpace:
    return SearchSpace.from_dict(data, source=source)


def random_study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))


def optuna_params(space: SearchSpace, values: dict) -> dict:
    """Every searched value of ``values`` under its Optuna name (key, or key.L per layer)."""
    params = {}
    for key, value in values.items():
        if key not in space.params:
            continue
        if isinstance(value, list):
            params.update({f"{key}.{layer}": item for layer, item in enumerate(value)})
        else:
            params[key] = value
    return params


def expected_local_names(values: dict) -> set[str]:
    """The Optuna names LOCAL_SPACE must ask for, worked out from the language's rules."""
    n = values["n_layers"]
    names = {"n_layers", "d_model", "memory"}
    names |= {f"heads.{i}" for i in range(n)} | {f"attention.{i}" for i in range(n)}
    local = [i for i in range(n) if values["attention"][i] == "local"]
    names |= {f"window.{i}" for i in local}
    names |= {f"dilation.{i}" for i in local if values["window"][i] > 8}
    if values["memory"] != "none":
        names.add("mem_len")
    return names


# ---- built-in spaces ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny_lm", "efficient_lm"])
def test_builtin_spaces_load_quickly(name):
    start = time.perf_counter()
    space = load_space(name)
    assert time.perf_counter() - start < 0.5
    assert space.name == name
    assert space.task == "causal_lm"
    assert Path(space.source).name == f"{name}.yaml"
    assert name in list_builtins("search_spaces")


def test_load_space_is_the_public_api():
    assert archsearch.load_space("tiny_lm").params.keys() == load_space("tiny_lm").params.keys()


@pytest.mark.parametrize("name", ["tiny_lm", "efficient_lm"])
def test_every_builtin_sample_is_a_valid_config_or_flagged(name):
    space = load_space(name)
    rng = random.Random(0)
    study = random_study()
    draws = [space.sample(rng) for _ in range(300)]
    draws += [space.suggest(study.ask()) for _ in range(40)]
    accepted = 0
    for values in draws:
        if space.violations(values):
            continue
        config = space.to_config(values)
        accepted += 1
        assert config.n_layers == values["n_layers"]
        assert config.task == space.task
        for key, value in values.items():
            if isinstance(value, list):
                assert len(value) == values["n_layers"]
                assert [getattr(layer, key) for layer in config.layers] == value
    # efficient_lm crosses per-layer attention with a global memory choice (memory needs full or
    # local attention in every layer), so only about a quarter of its random draws pass.
    assert accepted > len(draws) // 5


def test_tiny_lm_is_the_small_dense_default():
    space = load_space("tiny_lm")
    assert space.fixed["vocab_size"] == 256
    assert space.fixed["max_seq_len"] == 128
    assert [c.text for c in space.constraints] == ["d_model % heads == 0"]
    rng = random.Random(1)
    for _ in range(200):
        config = space.to_config(space.sample(rng))
        assert {layer.attention for layer in config.layers} == {"full"}
        assert {layer.ffn for layer in config.layers} == {"dense"}


def test_tiny_lm_straddles_the_mobile_budget():
    """Rough non-embedding MACs per 30 tokens: some samples over 100M, most under."""

    def macs(config: ArchConfig) -> float:
        d = config.d_model
        return sum(
            30 * (4 * d * layer.qkv_dim(d) + 2 * d * layer.hidden_dim(d)) + 2 * d * 30 * 30
            for layer in config.layers
        )

    space = load_space("tiny_lm")
    rng = random.Random(2)
    costs = [macs(space.to_config(space.sample(rng))) for _ in range(400)]
    over = sum(cost > 100e6 for cost in costs) / len(costs)
    assert 0.05 < over < 0.5


def test_efficient_lm_covers_every_family():
    space = load_space("efficient_lm")
    rng = random.Random(3)
    seen: dict[str, set] = {"attention": set(), "ffn": set(), "memory": set()}
    for _ in range(300):
        values = space.sample(rng)
        seen["attention"].update(values["attention"])
        seen["ffn"].update(values["ffn"])
        seen["memory"].add(values["memory"])
    from archsearch.config import ATTENTION_KINDS, FFN_KINDS, MEMORY_KINDS

    assert seen == {
        "attention": set(ATTENTION_KINDS),
        "ffn": set(FFN_KINDS),
        "memory": set(MEMORY_KINDS),
    }


# ---- define-by-run sampling -------------------------------------------------------------


def test_suggestion_order_puts_conditions_after_their_names():
    order = list(make_space(LOCAL_SPACE).params)
    assert order.index("attention") < order.index("window")
    assert order.index("n_layers") < order.index("window")
    assert order.index("memory") < order.index("mem_len")
    assert order.index("window") < order.index("dilation")
    # Otherwise YAML order is kept.
    assert order.index("d_model") < order.index("heads") < order.index("memory")


def test_optuna_suggests_conditional_params_only_when_active():
    space = make_space(LOCAL_SPACE)
    study = random_study(seed=1)
    for _ in range(60):
        trial = study.ask()
        values = space.suggest(trial)
        assert set(trial.params) == expected_local_names(values)
        n = values["n_layers"]
        assert len(values["heads"]) == n and len(values["attention"]) == n
        assert ("mem_len" in values) == (values["memory"] != "none")
        if "local" in values["attention"]:
            for layer, kind in enumerate(values["attention"]):
                if kind == "local":
                    assert values["window"][layer] == trial.params[f"window.{layer}"]
                else:  # inactive entries keep the LayerConfig default, so the list is complete
                    assert values["window"][layer] == LayerConfig().window
        else:
            assert "window" not in values


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_sample_and_suggest_agree_on_the_same_choices(seed):
    """Replaying a random sample into Optuna gives the same values and asks the same names."""
    space = make_space(LOCAL_SPACE)
    values = space.sample(random.Random(seed))
    study = random_study(seed=seed)
    study.enqueue_trial(optuna_params(space, values))
    trial = study.ask()
    assert space.suggest(trial) == values
    assert set(trial.params) == expected_local_names(values)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_violations_are_per_layer_and_skip_inactive_names(seed):
    space = make_space(LOCAL_SPACE)
    values = space.sample(random.Random(seed))
    n = values["n_layers"]
    divisible = all(values["d_model"] % values["heads"][i] == 0 for i in range(n))
    windows_ok = all(
        values["window"][i] >= 16 for i in range(n) if values["attention"][i] == "local"
    )
    expected = [
        text
        for text, ok in zip(LOCAL_SPACE["constraints"], [divisible, windows_ok], strict=True)
        if not ok
    ]
    assert space.violations(values) == expected
    # ArchConfig checks divisibility itself: the constraint and the config must agree.
    try:
        space.to_config(values)
        built = True
    except InputError as exc:
        assert exc.key == "heads"
        built = False
    assert built == divisible


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_sampled_numbers_stay_on_their_grid(seed):
    space = make_space(
        {
            "fixed": {"n_layers": 2},
            "params": {
                "d_model": {"int": [16, 256], "step": 16},
                "ffn_dim": {"int": [8, 4096], "log": True},
                "lsra_split": {"float": [0.25, 0.75], "step": 0.125, "per_layer": True},
                "dropout": {"float": ["1e-4", 0.5], "log": True},
                "capacity_factor": {"float": [1, 2]},
            },
        },
        source="grid.yaml",
    )
    rng_values = space.sample(random.Random(seed))
    optuna_values = space.suggest(random_study(seed).ask())
    for values in (rng_values, optuna_values):
        assert values["d_model"] % 16 == 0 and 16 <= values["d_model"] <= 256
        assert isinstance(values["ffn_dim"], int) and 8 <= values["ffn_dim"] <= 4096
        assert all(((x - 0.25) / 0.125).is_integer() and x <= 0.75 for x in values["lsra_split"])
        assert 1e-4 <= values["dropout"] <= 0.5
        assert 1 <= values["capacity_factor"] <= 2
        space.to_config(values)


def test_fixed_per_layer_lists_drive_per_layer_conditions():
    space = make_space(
        {
            "fixed": {"n_layers": 3, "attention": ["full", "local", "local"]},
            "params": {
                "window": {"choice": [4, 8], "when": "attention == 'local'", "per_layer": True}
            },
        }
    )
    trial = random_study().ask()
    values = space.suggest(trial)
    assert set(trial.params) == {"window.1", "window.2"}
    assert values["window"][0] == LayerConfig().window
    assert [layer.attention for layer in space.to_config(values).layers] == values["attention"]


SEQ2SEQ_SPACE = {
    "task": "seq2seq",
    "fixed": {"vocab_size": 32, "max_seq_len": 32, "d_model": 64},
    "params": {
        "n_layers": {"int": [1, 3]},
        "n_encoder_layers": {"int": [1, 3]},
        "heads": {"choice": [2, 4], "per_layer": True},
        "attention": {"choice": ["full", "local"], "per_layer": True},
        "window": {"choice": [4, 8], "when": "attention == 'local'", "per_layer": True},
        "encoder_heads": {"choice": [2, 4, 8], "per_layer": True},
        "encoder_attention": {"choice": ["full", "local"], "per_layer": True},
        "encoder_window": {
            "choice": [4, 8],
            "when": "encoder_attention == 'local'",
            "per_layer": True,
        },
    },
}


def test_seq2seq_encoder_keys_follow_the_encoder_count():
    space = make_space(SEQ2SEQ_SPACE)
    study = random_study(seed=4)
    for _ in range(30):
        trial = study.ask()
        values = space.suggest(trial)
        config = space.to_config(values)
        assert len(values["heads"]) == config.n_layers == values["n_layers"]
        assert len(values["encoder_heads"]) == config.n_encoder_layers
        assert [layer.heads for layer in config.encoder_layers] == values["encoder_heads"]
        local = [i for i, k in enumerate(values["encoder_attention"]) if k == "local"]
        assert {n for n in trial.params if n.startswith("encoder_window.")} == {
            f"encoder_window.{i}" for i in local
        }
        # The encoder never inherits the decoder's per-layer windows, even with no local layer.
        default = LayerConfig().window
        expected = [
            values["encoder_window"][i] if i in local else default
            for i in range(config.n_encoder_layers)
        ]
        assert [layer.window for layer in config.encoder_layers] == expected


# ---- exhaustive and random satisfiability checks -----------------------------------------


def test_exhaustive_check_counts_the_conditional_tree():
    # Per layer: full (1 way) or local with 2 windows (2 ways) -> 3 ways, 2 layers -> 9.
    data = {
        "fixed": {"n_layers": 2},
        "params": {
            "d_model": {"choice": [64]},
            "attention": {"choice": ["full", "local"], "per_layer": True},
            "window": {"choice": [8, 16], "when": "attention == 'local'", "per_layer": True},
        },
        "constraints": ["d_model < 0"],
    }
    with pytest.raises(InputError, match="checked all 9 configurations") as info:
        make_space(data)
    assert info.value.key == "constraints[0]"


def test_satisfiable_only_in_one_configuration_is_accepted():
    # Of 4 * 3**3 = 108 configurations only d_model 96 with 3 heads everywhere qualifies;
    # the exhaustive check must find it rather than reject the space.
    data = {
        "fixed": {"n_layers": 3},
        "params": {
            "d_model": {"choice": [32, 64, 96, 128]},
            "heads": {"choice": [5, 7, 3], "per_layer": True},
        },
        "constraints": ["d_model % heads == 0"],
    }
    space = make_space(data)
    assert space.violations({"n_layers": 3, "d_model": 96, "heads": [3, 3, 3]}) == []
    assert space.violations({"n_layers": 3, "d_model": 96, "heads": [3, 5, 3]}) != []


# ---- validation: one line naming the file and the key -------------------------------------

BASE = """\
name: t
task: causal_lm
fixed: {vocab_size: 32}
params:
  n_layers: {int: [1, 3]}
  d_model: {choice: [32, 64]}
  heads: {choice: [2, 4], per_layer: true}
"""

BAD_SPACES = [
    ("name not text", BASE.replace("name: t", "name: [1]"), "name", "non-empty string"),
    ("description not text", BASE + "description: {a: 1}\n", "description", "string"),
    ("unknown top-level key", BASE + "colour: red\n", "colour", "unknown key"),
    ("unknown param key", BASE + "  head: {choice: [1]}\n", "params.head", "did you mean 'heads'"),
    ("task is not a param", BASE + "  task: {choice: [seq2seq]}\n", "params.task", "top level"),
    ("unknown task", BASE.replace("causal_lm", "classify"), "task", "not one of"),
    ("choice not a list", BASE + "  ffn_ratio: {choice: 3}\n", "params.ffn_ratio.choice", "list"),
    ("nested choice", BASE + "  ffn_ratio: {choice: [[1]]}\n", "params.ffn_ratio.choice", "values"),
    ("int bound float", BASE + "  window: {int: [1, 2.5]}\n", "params.window.int", "integer"),
    ("float bound text", BASE + "  dropout: {float: [a, 1]}\n", "params.dropout.float", "number"),
    (
        "per_layer text",
        BASE + "  window: {int: [1, 2], per_layer: yes please}\n",
        "params.window.per_layer",
        "true or false",
    ),
    ("two kinds", BASE + "  window: {int: [1, 2], choice: [1]}\n", "params.window", "exactly one"),
    ("no kind", BASE + "  window: {when: 'd_model > 1'}\n", "params.window", "exactly one"),
    (
        "unknown option",
        BASE + "  window: {choice: [1], step: 2}\n",
        "params.window.step",
        "unknown option",
    ),
    ("param not a mapping", BASE + "  window: [1, 2]\n", "params.window", "mapping"),
    ("constraints text", BASE + "constraints: 'd_model > 1'\n", "constraints", "list"),
    ("fixed not mapping", BASE.replace("{vocab_size: 32}", "[1]"), "fixed", "mapping"),
    ("empty choice", BASE + "  ffn_ratio: {choice: []}\n", "params.ffn_ratio.choice", "non-empty"),
    (
        "repeated choice",
        BASE + "  ffn_ratio: {choice: [1, 1]}\n",
        "params.ffn_ratio.choice",
        "twice",
    ),
    ("low above high", BASE + "  window: {int: [8, 2]}\n", "params.window.int", "greater than"),
    (
        "log from zero",
        BASE + "  dropout: {float: [0, 0.5], log: true}\n",
        "params.dropout.log",
        "low > 0",
    ),
    (
        "step off grid",
        BASE + "  window: {int: [1, 8], step: 2}\n",
        "params.window.step",
        "whole number of steps",
    ),
    (
        "float step off grid",
        BASE + "  lsra_split: {float: [0.25, 0.75], step: 0.2}\n",
        "params.lsra_split.step",
        "whole number of steps",
    ),
    (
        "step with log",
        BASE + "  dropout: {float: [0.1, 0.5], step: 0.1, log: true}\n",
        "params.dropout.step",
        "cannot be combined",
    ),
    (
        "condition syntax",
        BASE + "  window: {choice: [8], when: 'heads =='}\n",
        "params.window.when",
        "invalid expression",
    ),
    (
        "constraint syntax",
        BASE + "constraints: ['d_model %% heads == 0']\n",
        "constraints[0]",
        "invalid expression",
    ),
    (
        "constraint call",
        BASE + "constraints: [\"__import__('os')\"]\n",
        "constraints[0]",
        "function calls not allowed",
    ),
    (
        "unknown name",
        BASE + "constraints: ['d_modle % heads == 0']\n",
        "constraints[0]",
        "unknown name 'd_modle' (did you mean 'd_model'?)",
    ),
    (
        "unknown name in condition",
        BASE + "  window: {choice: [8], when: 'attention == 1'}\n",
        "params.window.when",
        "unknown name 'attention'",
    ),
    (
        "cycle",
        BASE + "  window: {choice: [8], when: 'dilation == 1'}\n"
        "  dilation: {choice: [1, 2], when: 'window == 8'}\n",
        "params.window.when",
        "cycle: window -> dilation -> window",
    ),
    (
        "self cycle",
        BASE + "  window: {choice: [8], when: 'window == 8'}\n",
        "params.window.when",
        "cycle",
    ),
    (
        "unsatisfiable, finite",
        BASE + "constraints: ['d_model > 64']\n",
        "constraints[0]",
        "checked all",
    ),
    (
        "unsatisfiable, continuous",
        BASE + "  dropout: {float: [0, 0.5]}\nconstraints: ['dropout > 0.6']\n",
        "constraints[0]",
        "random samples",
    ),
    (
        "unsatisfiable together",
        BASE + "constraints: ['d_model > 32', 'd_model < 64']\n",
        "constraints",
        "all constraints together",
    ),
    (
        "non-boolean constraint",
        BASE + "constraints: ['d_model % heads']\n",
        "constraints[0]",
        "true or false",
    ),
    (
        "per-layer condition on a global",
        BASE + "  attn_dim: {choice: [8], when: 'heads == 2'}\n",
        "params.attn_dim.when",
        "make 'attn_dim' per_layer",
    ),
    (
        "per_layer global",
        BASE + "  dropout: {float: [0, 0.5], per_layer: true}\n",
        "params.dropout.per_layer",
        "layer keys",
    ),
    (
        "conditional count",
        BASE.replace("{int: [1, 3]}", "{int: [1, 3], when: 'd_model > 1'}"),
        "params.n_layers.when",
        "conditional",
    ),
    ("zero layers", BASE.replace("{int: [1, 3]}", "{int: [0, 3]}"), "params.n_layers", ">= 1"),
    ("missing count", BASE.replace("  n_layers: {int: [1, 3]}\n", ""), "params", "n_layers"),
    (
        "in fixed and params",
        BASE.replace("{vocab_size: 32}", "{d_model: 32}"),
        "params.d_model",
        "also given in fixed",
    ),
    (
        "kind typo",
        BASE + "  attention: {choice: [full, performr]}\n",
        "params.attention.choice",
        "'performr' is not one of",
    ),
    (
        "encoder key in causal_lm",
        BASE + "  encoder_heads: {choice: [2]}\n",
        "params.encoder_heads",
        "seq2seq",
    ),
    (
        "fixed list without fixed count",
        BASE.replace("{vocab_size: 32}", "{vocab_size: 32, window: [1, 2]}"),
        "fixed.window",
        "n_layers fixed",
    ),
    ("empty params", "params: {}\nfixed: {n_layers: 1}\n", "params", "non-empty"),
]


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [case[1:] for case in BAD_SPACES],
    ids=[case[0] for case in BAD_SPACES],
)
def test_bad_spaces_give_one_line_with_file_and_key(tmp_path, text, key, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_space(path)
    message = str(info.value)
    assert info.value.key == key
    assert info.value.source == str(path)
    assert message.startswith(f"{path}: {key}: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("params: {a: [1, 2\n", "not valid YAML"),
        ("- n_layers\n- d_model\n", "must be a mapping"),
        ("", "must be a mapping of keys to values, got empty"),
        ("just text\n", "must be a mapping"),
    ],
)
def test_malformed_files_name_the_file(tmp_path, text, fragment):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_space(path)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_builtin_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="no built-in named 'nope'") as info:
        load_space("nope")
    assert info.value.key == "--space"
    with pytest.raises(InputError, match="no such file"):
        load_space(tmp_path / "missing.yaml")


def test_seq2seq_rules_are_checked():
    missing_encoder = {k: v for k, v in SEQ2SEQ_SPACE["params"].items() if k != "n_encoder_layers"}
    with pytest.raises(InputError, match="n_encoder_layers") as info:
        make_space({**SEQ2SEQ_SPACE, "params": missing_encoder})
    assert info.value.key == "params"
    # A per-layer decoder key needs its encoder twin, or the encoder's value would be a guess.
    no_twin = {k: v for k, v in SEQ2SEQ_SPACE["params"].items() if k != "encoder_heads"}
    with pytest.raises(InputError, match="give encoder_heads") as info:
        make_space({**SEQ2SEQ_SPACE, "params": no_twin})
    assert info.value.key == "params.heads"
    # A condition may not mix the encoder's and the decoder's layers.
    mixed = dict(SEQ2SEQ_SPACE["params"])
    mixed["window"] = {"choice": [4], "when": "encoder_attention == 'local'", "per_layer": True}
    with pytest.raises(InputError, match="other stack") as info:
        make_space({**SEQ2SEQ_SPACE, "params": mixed})
    assert info.value.key == "params.window.when"


def test_condition_errors_name_the_key_at_load_and_at_sampling_time():
    def space_with(d_models: list[int]) -> SearchSpace:
        data = {
            "fixed": {"n_layers": 1},
            "params": {
                "d_model": {"choice": d_models},
                "embed_dim": {"choice": [8], "when": "16 / d_model < 1"},
            },
        }
        return make_space(data, source="div.yaml")

    # Loading draws once, so an error on the first branch shows up before any search starts.
    with pytest.raises(InputError, match="division by zero") as info:
        space_with([0, 64])
    assert str(info.value).startswith("div.yaml: params.embed_dim.when: ")
    # On a later branch it shows up when that branch is drawn, with the same key.
    space = space_with([64, 0])
    rng = random.Random(0)
    with pytest.raises(InputError, match="division by zero") as info:
        for _ in range(100):
            space.sample(rng)
    assert info.value.key == "params.embed_dim.when"
    assert info.value.source == "div.yaml"


def test_from_dict_round_trips_through_yaml(tmp_path):
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(LOCAL_SPACE, sort_keys=False))
    loaded = load_space(path)
    direct = make_space(LOCAL_SPACE)
    assert list(loaded.params) == list(direct.params)
    assert loaded.sample(random.Random(5)) == direct.sample(random.Random(5))
    assert loaded.source == str(path)
