"""``archsearch export`` in every format, read back by the real consumers: archsearch itself,
PyTorch, onnxruntime and Hugging Face transformers (offline)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import optuna
import pytest
import torch
import torch.nn.functional as F
import yaml

from archsearch import ArchConfig, build_model
from archsearch.cli import main
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import fit

# transformers reads these when first imported: no network, remote code cached in a temp dir.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(Path(tempfile.gettempdir()) / "archsearch-test-hf"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study_db(micro_study):
    """The session's micro search (exports only read it)."""
    study = optuna.load_study(study_name="micro", storage=micro_study["url"])
    return {**micro_study, "study": study}


def export(capsys, db, out: Path, fmt: str, trial: str = "best") -> list[Path]:
    args = ["export", "--study", "micro", "--storage", db["url"], "--trial", trial]
    assert main([*args, "--format", fmt, "--out", str(out)]) == 0, capsys.readouterr().err
    return [Path(line.removeprefix("wrote ")) for line in capsys.readouterr().out.splitlines()]


def lowest_quality_within_budget(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The documented meaning of ``best``, from raw trial data."""
    trained = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and t.user_attrs.get("status") == "complete"
        and all(c <= 0 for c in t.system_attrs["constraints"])
    ]
    return min(trained, key=lambda t: t.values[0])


def test_yaml_and_json_read_back_equal_with_provenance(capsys, study_db, tmp_path):
    study = study_db["study"]
    best = lowest_quality_within_budget(study)
    (yaml_path,) = export(capsys, study_db, tmp_path, "yaml")
    (json_path,) = export(capsys, study_db, tmp_path, "json")
    macs = best.user_attrs["macs"]
    assert yaml_path.name == f"micro-trial{best.number}-{macs / 1e6:.3g}M-macs.yaml"
    assert json_path.stem == yaml_path.stem

    searched = ArchConfig.from_dict(best.user_attrs["arch"])
    assert ArchConfig.from_yaml(yaml_path) == searched
    assert ArchConfig.from_yaml(json_path) == searched
    provenance = json.loads(json_path.read_text())["provenance"]
    assert provenance["study"] == "micro" and provenance["trial"] == best.number
    assert provenance["objectives"] == dict(zip(["val_bpb", "macs"], best.values, strict=True))
    assert provenance["profile"]["name"] == "micro_1M"
    assert provenance["profile"]["convention"] == study.user_attrs["profile"]["convention"]
    assert provenance["data_fingerprint"] == study.user_attrs["data_fingerprint"]
    assert provenance["evaluator"]["name"] == "tiny_brief"
    assert provenance["searched_with"] == study.user_attrs["archsearch_version"]

    # `archsearch measure` reads the export as it is and finds the costs the search recorded.
    assert main(["measure", str(yaml_path), "--profile", str(study_db["profile"]), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["macs"] == macs and measured["within_budget"]

    (by_number,) = export(capsys, study_db, tmp_path / "n", "yaml", trial="0")
    assert re.match(r"micro-trial0-", by_number.name)
    assert ArchConfig.from_yaml(by_number) == ArchConfig.from_dict(
        study.trials[0].user_attrs["arch"]
    )


def test_bad_requests_are_one_line_errors(capsys, study_db, tmp_path):
    for trial, fragment in (("999", "no trial 999"), ("first", "'best' or a trial number")):
        args = ["export", "--study", "micro", "--storage", study_db["url"], "--trial", trial]
        assert main([*args, "--out", str(tmp_path)]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and "--trial" in error[0] and fragment in error[0]
    missing = tmp_path / "none" / "study.db"
    assert main(["export", "--study", "micro", "--storage", f"sqlite:///{missing}"]) == 2
    assert not missing.parent.exists()
    assert not list(tmp_path.iterdir())


def test_pytorch_export_rebuilds_the_searched_model(capsys, study_db, tmp_path):
    best = lowest_quality_within_budget(study_db["study"])
    config_path, weights_path = export(capsys, study_db, tmp_path, "pytorch")
    model = build_model(ArchConfig.from_yaml(config_path))
    model.load_state_dict(torch.load(weights_path, weights_only=True), strict=True)
    # The parameter count the search's analytic cost model recorded for this trial.
    assert sum(p.numel() for p in model.parameters()) == best.user_attrs["total_params"]
    tokens = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    logits = model.eval()(tokens).logits
    assert logits.shape == (2, 9, 256) and torch.isfinite(logits).all()

    # The weights are the ones the search started from: training them with the evaluator the
    # provenance names gives back the quality the study recorded for this trial.
    provenance = yaml.safe_load(config_path.read_text())["provenance"]
    recipe = Recipe.from_dict(provenance["evaluator"])
    curve = fit(model.train(), recipe)
    assert curve[-1]["val_bpb"] == pytest.approx(best.values[0], rel=1e-5)


def test_onnx_export_matches_pytorch_in_onnxruntime(capsys, study_db, tmp_path):
    import onnx
    import onnxruntime

    from archsearch.export.onnx_model import graph_for, verify

    onnx_path, config_path = export(capsys, study_db, tmp_path, "onnx")
    _, weights_path = export(capsys, study_db, tmp_path / "pt", "pytorch")
    model = build_model(ArchConfig.from_yaml(config_path)).eval()
    model.load_state_dict(torch.load(weights_path, weights_only=True))

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for shape in ((1, 3), (4, 11), (2, 32)):  # lengths other than the traced one
        tokens = torch.randint(0, 256, shape, generator=generator)
        (got,) = session.run(None, {"input_ids": tokens.numpy()})
        with torch.no_grad():
            expected = model(tokens).logits
        torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-4, rtol=1e-4)

    # The exporter's own check passes this graph and fails it against other weights.
    config = ArchConfig.from_yaml(config_path)
    assert verify(graph_for(model, config), onnx_path)[0] <= 1.0
    other = build_model(config).eval()  # freshly initialised: other weights
    assert verify(graph_for(other, config), onnx_path)[0] > 1.0

    metadata = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(metadata["archsearch.provenance"])["study"] == "micro"
    assert ArchConfig.from_dict(json.loads(metadata["archsearch.arch"])) == ArchConfig.from_yaml(
        config_path
    )


def test_onnx_refuses_a_family_whose_spec_gives_a_reason(monkeypatch):
    """Every registered family exports today (test_family_registry); one whose spec sets
    ``onnx_refusal`` is refused up front with that reason."""
    from archsearch.export import onnx_model

    monkeypatch.setitem(onnx_model.UNSUPPORTED, ("attention", "performer"), "a stated reason")
    config = ArchConfig.from_dict(
        {"d_model": 16, "n_layers": 1, "heads": 2, "attention": "performer"}
    )
    with pytest.raises(InputError, match=r"performer.*a stated reason") as caught:
        onnx_model.check_exportable(config)
    assert caught.value.key == "--format"


def test_hf_export_loads_in_transformers_and_trains(capsys, study_db, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainingArguments

    best = lowest_quality_within_budget(study_db["study"])
    paths = export(capsys, study_db, tmp_path, "hf")
    folder = paths[0].parent
    assert {p.name for p in paths} >= {"config.json", "model.safetensors", "modeling_archsearch.py"}
    _, weights_path = export(capsys, study_db, tmp_path / "pt", "pytorch")

    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert ArchConfig.from_dict(config.arch) == ArchConfig.from_dict(best.user_attrs["arch"])
    assert config.provenance["trial"] == best.number
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    assert sum(p.numel() for p in model.parameters()) == best.user_attrs["total_params"]

    # Same weights as the PyTorch export; loss = next-token cross-entropy of those logits.
    reference = build_model(ArchConfig.from_dict(best.user_attrs["arch"])).eval()
    reference.load_state_dict(torch.load(weights_path, weights_only=True))
    tokens = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        output = model(input_ids=tokens, labels=tokens)
        logits = reference(tokens).logits
    torch.testing.assert_close(output.logits, logits)
    expected_loss = F.cross_entropy(logits[:, :-1].reshape(-1, 256), tokens[:, 1:].reshape(-1))
    torch.testing.assert_close(output.loss, expected_loss)

    torch.manual_seed(0)
    data = [{"input_ids": row, "labels": row} for row in torch.randint(0, 256, (8, 16))]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    arguments = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    result = Trainer(model=model, args=arguments, train_dataset=data).train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p)]
    assert len(changed) == len(before)  # every parameter received a gradient step

    # Without remote code: archsearch registers its classes with the Auto factories.
    from archsearch.export.hf_remote import register
    from archsearch.export.hf_remote.modeling_archsearch import ArchsearchForCausalLM

    register()
    local = AutoModelForCausalLM.from_pretrained(folder)
    assert isinstance(local, ArchsearchForCausalLM)
    with torch.no_grad():
        torch.testing.assert_close(local(input_ids=tokens).logits, logits)
