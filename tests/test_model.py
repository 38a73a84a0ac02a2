import pytest
import torch

from sertune.config import TrainConfig
from sertune.training.model import AttentionLSTM, MultiVectorAttention
from sertune.store.load import load_store
from sertune.training.loop import train


def masked(lengths, t):
    return torch.arange(t)[None, :] < torch.as_tensor(lengths)[:, None]


def test_single_vector_is_classic_soft_attention():
    torch.manual_seed(0)
    att = MultiVectorAttention(8, n_att=1)
    h = torch.randn(3, 5, 8)
    mask = masked([5, 3, 1], 5)
    context, weights = att(h, mask)
    u = att.u[0]
    for b, n in enumerate([5, 3, 1]):
        e = h[b, :n] @ u  # Mirsamadi et al.: e_t = u . h_t, alpha = softmax(e), c = sum alpha h
        alpha = torch.exp(e) / torch.exp(e).sum()
        assert torch.allclose(weights[b, :n], alpha, atol=1e-6)
        assert torch.allclose(context[b], (alpha[:, None] * h[b, :n]).sum(0), atol=1e-6)


def test_weights_sum_to_one_and_zero_on_padding():
    torch.manual_seed(1)
    att = MultiVectorAttention(6, n_att=4)
    h = torch.randn(4, 9, 6)
    mask = masked([9, 4, 7, 2], 9)
    _, w = att(h, mask)
    assert torch.allclose(w.sum(1), torch.ones(4))
    assert (w[~mask] == 0).all() and (w[mask] > 0).all()


def test_max_over_vectors_is_used():
    torch.manual_seed(2)
    att = MultiVectorAttention(4, n_att=2)
    h = torch.randn(2, 6, 4)
    mask = torch.ones(2, 6, dtype=torch.bool)
    with torch.no_grad():
        att.u[0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
        att.u[1] = torch.tensor([0.0, 3.0, 0.0, 0.0])
    _, w = att(h, mask)
    e = torch.maximum(h[..., 0], 3 * h[..., 1])
    assert torch.allclose(w, torch.softmax(e, dim=1), atol=1e-6)
    mean_e = (h[..., 0] + 3 * h[..., 1]) / 2  # what a mean over vectors would give instead
    assert not torch.allclose(w, torch.softmax(mean_e, dim=1), atol=1e-3)


@pytest.mark.parametrize("n_att", [1, 16])
def test_extra_padding_changes_nothing(n_att):
    torch.manual_seed(3)
    model = AttentionLSTM(34, 16, n_att=n_att, dropout=0.5).eval()
    x = torch.randn(3, 20, 34)
    lengths = torch.tensor([20, 11, 5])
    x = x * masked(lengths, 20)[..., None]
    logits, w = model(x, lengths)
    longer = torch.cat([x, torch.randn(3, 13, 34)], dim=1)  # junk, not even zeros, after the end
    logits2, w2 = model(longer, lengths)
    assert torch.allclose(logits, logits2, atol=1e-5)
    assert torch.allclose(w, w2[:, :20], atol=1e-6) and (w2[:, 20:] == 0).all()


def test_same_seed_same_result_and_beats_chance(synth_store):
    fs = load_store(synth_store)
    cfg = TrainConfig(epochs=12, seed=3, threads=1, n_att=4)
    a, b = train(cfg, fs), train(cfg, fs)
    assert a.uar == b.uar and a.val_uar == b.val_uar and a.confusion == b.confusion
    assert a.uar > 0.2  # chance is 1/8; seeds 0-9 at 12 epochs gave 0.25-0.40 on this store
    c = train(cfg.replace(seed=4), fs)
    assert (c.uar, c.val_uar, c.confusion) != (a.uar, a.val_uar, a.confusion)


def test_model_selection_reports_test_at_best_validation_epoch(synth_store):
    fs = load_store(synth_store)
    r = train(TrainConfig(epochs=5, seed=0, threads=1), fs)
    vals = [h["val_uar"] for h in r.history]
    assert r.best_epoch == vals.index(max(vals)) + 1 and r.val_uar == max(vals)
    assert sum(map(sum, r.confusion)) == r.protocol["folds"][0]["n_test"]
    assert r.protocol["folds"][0]["test_actors"] == [5, 6]


def test_folds_and_random_split(synth_store):
    fs = load_store(synth_store)
    r = train(TrainConfig(epochs=2, folds=3, threads=1), fs)
    tests = [tuple(f["test_actors"]) for f in r.protocol["folds"]]
    assert len(tests) == 3 and sorted(a for t in tests for a in t) == [1, 2, 3, 4, 5, 6]
    assert sum(map(sum, r.confusion)) == 360  # every utterance tested exactly once over the folds
    r = train(TrainConfig(epochs=2, split="random", threads=1), fs)
    f = r.protocol["folds"][0]
    assert f["kind"] == "random" and f["n_train"] + f["n_val"] + f["n_test"] == 360


def test_resume_from_state_gives_the_same_result(synth_store):
    from sertune.training.loop import Training

    fs = load_store(synth_store)
    cfg = TrainConfig(epochs=4, seed=5, threads=1)
    straight = train(cfg, fs)
    first = Training(cfg, fs)
    first.step(), first.step()
    resumed = train(cfg, fs, state=first.state_dict())
    assert resumed.uar == straight.uar and resumed.confusion == straight.confusion


def _bf16_lstm_kernel() -> bool:
    lstm = torch.nn.LSTM(2, 2, batch_first=True)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 2))
        return True
    except RuntimeError:
        return False


def test_precision_is_fp32_or_bf16():
    from sertune.errors import ConfigError

    with pytest.raises(ConfigError, match="precision 'fp16'"):
        TrainConfig(precision="fp16")


# What bf16 promises, measured before the thresholds were set (Intel Xeon with AVX512-BF16, torch
# 2.13.0+cpu, this synthetic store, n_att 4, 20 epochs, seeds 0-19, each seed in both precisions):
# the training loss fell by 1.13 or more in every bf16 run; bf16's loss stayed within 0.0021 of
# fp32's at the last epoch; bf16 test UAR was 0.328 or more (chance 0.125); and bf16 minus fp32 test
# UAR was 0 for 17 seeds, +0.008 for 2 and +0.016 for 1. With 6 epochs the models were barely past
# chance and single flipped utterances moved UAR by up to 0.06 (the old test's failure), so the run
# is 20 epochs and the thresholds below keep a margin of 2-10x over what was seen.
BF16_EPOCHS, BF16_MIN_LOSS_DROP, BF16_LOSS_GAP, BF16_UAR_GAP, BF16_MIN_UAR = 20, 0.5, 0.02, 0.05, 0.25


@pytest.mark.skipif(not _bf16_lstm_kernel(), reason="needs a bf16 LSTM kernel (AVX512-BF16 or AMX CPU); "
                    "test_bf16_refused_without_a_kernel covers this machine")
def test_bf16_trains_like_fp32_and_is_recorded(synth_store):
    """Branch: CPUs with a bfloat16 LSTM kernel (oneDNN: AVX512-BF16 or AMX; `grep bf16 /proc/cpuinfo`).
    bf16 trains (the loss falls), tracks fp32's loss epoch by epoch, lands within a few utterances of
    fp32's test UAR for the same seed, and the row records it. On the CPU whichever machine runs it:
    `auto` would pick a GPU where there is one, and the kernel probe is of the CPU."""
    from sertune import results

    fs = load_store(synth_store)
    cfg = TrainConfig(epochs=BF16_EPOCHS, seed=3, threads=1, n_att=4, device="cpu")
    fp32, bf16 = train(cfg, fs), train(cfg.replace(precision="bf16"), fs)
    loss = lambda r: [h["train_loss"] for h in r.history]  # noqa: E731
    assert loss(bf16)[0] - loss(bf16)[-1] > BF16_MIN_LOSS_DROP
    assert max(abs(a - b) for a, b in zip(loss(bf16), loss(fp32))) < BF16_LOSS_GAP
    assert loss(bf16) != loss(fp32)  # it did run in bf16: the same arithmetic would match to the bit
    assert bf16.uar > BF16_MIN_UAR and abs(bf16.uar - fp32.uar) <= BF16_UAR_GAP
    assert bf16.protocol["folds"][0]["test_actors"] == [5, 6]
    row = results.result_row(cfg.replace(precision="bf16"), bf16, fs.manifest, "test")
    assert row["config"]["precision"] == "bf16"
    row = results.result_row(cfg, fp32, fs.manifest, "test")
    assert row["config"]["precision"] == "fp32"  # the row records the run's precision, not a constant


def test_bf16_refused_without_a_kernel(synth_store, tmp_path):
    """Branch: a CPU without a bfloat16 LSTM kernel. Runs on every x86 machine: where the CPU has the
    kernel, oneDNN is capped at AVX2 (ONEDNN_MAX_CPU_ISA, read once per process, hence the
    subprocess), which takes the kernel away as a CPU without AVX512-BF16 lacks it. `sertune train
    --precision bf16` must then stop before training with one line and the configuration exit code,
    and leave no result behind."""
    import os
    import subprocess
    import sys

    from proctools import sertune

    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    probe = subprocess.run([sys.executable, "-c", "import test_model as t; print(t._bf16_lstm_kernel())"],
                           env={**env, "PYTHONPATH": os.path.dirname(__file__)}, capture_output=True, text=True)
    if probe.stdout.strip() != "False":
        pytest.skip(f"oneDNN capped at AVX2 still has a bf16 LSTM kernel here ({probe.stdout.strip() or probe.stderr[-200:]})")
    out = tmp_path / "run"
    done = subprocess.run(sertune("train", "--store", synth_store, "--out", str(out),
                                  "--epochs", "1", "--precision", "bf16", "--device", "cpu"),
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == ["Error: --precision bf16: no bfloat16 LSTM kernel on this cpu (CPUs need AVX512-BF16 or AMX); "
                     "use --precision fp32"], done.stderr
    assert not (out / "result.json").exists()


@pytest.mark.parametrize("init", ["default", "xavier"])
def test_runs_that_differ_only_in_n_att_share_every_other_draw(synth_store, init):
    """Common random numbers: with the same seed, N_att = 1 and N_att = 64 start from the same LSTM
    and output layer, see the same batches and the same dropout masks; only the attention vectors
    differ, and the first of them points the same way (its own stream, drawn in order)."""
    from sertune.training.loop import Training

    fs = load_store(synth_store)
    cfg = TrainConfig(epochs=1, seed=7, threads=1, init=init, context_norm=init == "xavier", dropout=0.3)
    one, many = Training(cfg, fs), Training(cfg.replace(n_att=64), fs)
    for a, b in zip(one.folds, many.folds):
        pa, pb = dict(a.model.named_parameters()), dict(b.model.named_parameters())
        assert pa.keys() == pb.keys()
        for name in pa:
            if name != "attention.u":
                assert torch.equal(pa[name], pb[name]), name
        u1, u64 = pa["attention.u"][0], pb["attention.u"][0]
        assert pb["attention.u"].shape == (64, cfg.hidden_size)
        assert torch.allclose(u1 / u1.norm(), u64 / u64.norm(), atol=1e-6)
        assert [x.tolist() for x in a.batches()] == [x.tolist() for x in b.batches()]
    Training(cfg, fs)
    one_rng = torch.get_rng_state()  # the dropout stream a run starts training from
    Training(cfg.replace(n_att=64), fs)
    assert torch.equal(one_rng, torch.get_rng_state())
    other = Training(cfg.replace(seed=8), fs)
    assert not torch.equal(dict(other.folds[0].model.named_parameters())["lstm.weight_hh_l0"],
                           dict(one.folds[0].model.named_parameters())["lstm.weight_hh_l0"])
