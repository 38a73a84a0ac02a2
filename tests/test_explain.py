"""`sertune explain`: attention maps of a sweep-trained model on real RAVDESS."""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sertune.cli.explain import explain as explain_command
from sertune.insight.models import resolve_models
from realmini import mini_store, swept_experiment


@pytest.fixture(scope="module")
def explained(real_16k, tmp_path_factory, ray_local):
    base = tmp_path_factory.getbasetemp()
    store = mini_store(real_16k, base)
    exp = swept_experiment(store, base)
    out = tmp_path_factory.mktemp("explain")
    utt = "03-01-05-02-01-01-05"  # angry, actor 5 (a test speaker of this split)
    audio = real_16k / "Actor_24" / "03-01-04-01-02-01-24.flac"  # a file outside the store
    res = CliRunner().invoke(explain_command, ["--model", str(exp), "--n-att", "4", "--utt", utt,
                                               "--out", str(out), str(audio)])
    assert res.exit_code == 0, res.output
    return exp, out, json.loads((out / "attention.json").read_text())


def test_attention_sums_to_one_over_real_frames(explained):
    _, _, doc = explained
    assert len(doc["utterances"]) == 2
    for u in doc["utterances"]:
        alpha, winner = np.array(u["alpha"]), np.array(u["winner"])
        assert alpha.sum() == pytest.approx(1.0, abs=1e-5) and (alpha > 0).all()
        assert len(winner) == len(alpha) and set(winner) <= set(range(4))
    assert doc["utterances"][0]["label"] == 4 and doc["utterances"][1]["label"] is None


def test_attention_map_is_what_the_model_computes(explained):
    """The inspection path gives the forward pass's logits and weights, and the winning vector
    is the argmax of the scores u_i . h_t."""
    exp, _, _ = explained
    m = resolve_models(str(exp), 4)[0]
    torch.manual_seed(0)
    x, lengths = torch.randn(3, 40, 34), torch.tensor([40, 25, 9])
    logits, alpha, winner = m.net.attention_map(x, lengths)
    ref_logits, ref_alpha = m.net(x, lengths)
    assert torch.allclose(logits, ref_logits) and torch.allclose(alpha, ref_alpha)
    h, _ = m.net.lstm(x)
    assert (winner[0] == (h[0] @ m.net.attention.u.T).argmax(-1)).all()
    assert (winner[2, 9:] == -1).all() and (alpha[2, 9:] == 0).all()


def test_win_shares_over_the_test_set(explained):
    _, out, doc = explained
    t = doc["test_set"]
    assert t["n"] == 120 and sum(t["counts"]) == 120  # actors 5 and 6, 60 utterances each
    shares = np.array(t["win_shares"])
    assert shares.shape == (4, 8) and np.allclose(shares.sum(0), 1.0)
    for name in ("win_shares.png", "attention_03-01-05-02-01-01-05.png", "attention_03-01-04-01-02-01-24.flac.png"):
        assert mpimg.imread(out / name).ndim == 3
