"""`sertune predict` and the models sweep trials keep, on the real RAVDESS."""

import io
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sertune.audio.labels import EMOTIONS
from sertune.cli.predict import predict as predict_command
from sertune.insight.models import read_record, resolve_models
from realmini import mini_store, swept_experiment


@pytest.fixture(scope="module")
def swept(real_16k, tmp_path_factory, ray_local):
    base = tmp_path_factory.getbasetemp()
    store = mini_store(real_16k, base)
    return store, swept_experiment(store, base)


def run(args):
    return CliRunner().invoke(predict_command, [str(a) for a in args])


def test_sweep_trial_keeps_a_weights_only_model_next_to_its_row(swept):
    store, exp = swept
    location = exp / "sweep" / "models" / "n_att=4" / "seed=0" / "model.pt"
    record = torch.load(location, weights_only=True)  # tensors and plain types only
    assert record["config"]["n_att"] == 4 and record["config"]["seed"] == 0
    assert record["store"] == store and record["features"]["n_mfcc"] == 34
    fold = record["folds"][0]
    assert fold["test_logits"].shape == (len(fold["test_utt_ids"]), len(EMOTIONS))
    assert [f.name for f in resolve_models(str(exp), 4)] == ["n_att=4/seed=0"]


def test_prediction_reproduces_the_training_runs_test_logits(swept):
    store, exp = swept
    record = read_record(str(exp / "sweep" / "models" / "n_att=4" / "seed=0" / "model.pt"))
    fold = record["folds"][0]
    ids = fold["test_utt_ids"][::6]  # 20 of the 120 test utterances keep the test quick
    files = [Path(store).parent / "real-mini-corpus" / f"Actor_{u[-2:]}" / f"{u}.flac" for u in ids]
    out = Path(store).parent / "pred.json"
    res = run(["--model", exp, "--n-att", 4, "--seed", 0, "--out", out, *files])
    assert res.exit_code == 0, res.output
    got = {Path(r["file"]).stem: r for r in json.loads(out.read_text())}
    assert sorted(got) == sorted(ids)
    want = torch.softmax(fold["test_logits"], dim=1)
    for i, u in enumerate(fold["test_utt_ids"]):
        if u in got:
            assert [got[u][e] for e in EMOTIONS] == pytest.approx(want[i].tolist(), abs=1e-5)
            assert got[u]["predicted"] == EMOTIONS[int(want[i].argmax())]
            assert f"{u}.flac" in res.output


def test_undecodable_file_is_reported_and_the_others_predicted(swept, tmp_path, real_16k):
    _, exp = swept
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    good = real_16k / "Actor_24" / "03-01-05-02-01-01-24.flac"  # angry, a speaker the model never saw
    res = run(["--model", exp, "--n-att", 4, "--out", tmp_path / "p.csv", bad, good])
    assert res.exit_code == 3
    assert "Error: " in res.output and "broken.wav: cannot decode audio" in res.output
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0].startswith("file,predicted,neutral") and len(lines) == 2 and good.name in lines[1]


def test_model_whose_features_differ_from_its_store_is_refused(swept, tmp_path):
    _, exp = swept
    record = read_record(str(exp / "sweep" / "models" / "n_att=4" / "seed=0" / "model.pt"))
    record["features"] = {**record["features"], "hop_ms": 20.0}
    torch.save(record, tmp_path / "model.pt")
    res = run(["--model", tmp_path / "model.pt", tmp_path])
    assert res.exit_code == 4 and "feature parameters differ from the model's (hop_ms)" in res.output


def test_several_models_need_ensemble_and_a_pickle_is_not_loaded(swept, tmp_path):
    _, exp = swept
    res = run(["--model", exp, tmp_path])
    assert res.exit_code == 2 and "needs --n-att" in res.output
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format": "sertune-model", "x": Payload()}))
    res = run(["--model", tmp_path / "evil.pt", tmp_path])
    assert res.exit_code == 2 and "not a sertune model file" in res.output and "pwned" not in res.output


def test_several_seeds_need_ensemble_which_averages(swept, tmp_path, real_16k):
    import shutil

    _, exp = swept
    src = exp / "sweep" / "models" / "n_att=4" / "seed=0" / "model.pt"
    for seed in (0, 1):  # the same weights twice: their average is the single model's output
        (tmp_path / "exp" / "sweep" / "models" / "n_att=4" / f"seed={seed}").mkdir(parents=True)
        shutil.copy(src, tmp_path / "exp" / "sweep" / "models" / "n_att=4" / f"seed={seed}" / "model.pt")
    audio = real_16k / "Actor_24" / "03-01-03-01-01-01-24.flac"
    res = run(["--model", tmp_path / "exp", "--n-att", 4, audio])
    assert res.exit_code == 2 and "pass --ensemble" in res.output and "n_att=4/seed=1" in res.output
    both = run(["--model", tmp_path / "exp", "--n-att", 4, "--ensemble", "--out", tmp_path / "e.json", audio])
    one = run(["--model", tmp_path / "exp", "--n-att", 4, "--seed", 1, "--out", tmp_path / "o.json", audio])
    assert both.exit_code == one.exit_code == 0
    e, o = json.loads((tmp_path / "e.json").read_text())[0], json.loads((tmp_path / "o.json").read_text())[0]
    assert [e[k] for k in EMOTIONS] == pytest.approx([o[k] for k in EMOTIONS], abs=1e-6)
