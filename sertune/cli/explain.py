"""`sertune explain`: attention maps of a trained model."""

from __future__ import annotations

import click

from sertune.cli.predict import model_options


@click.command()
@model_options
@click.option("--fold", type=click.IntRange(min=0), default=0, show_default=True, help="which fold's model (with --folds K)")
@click.option("--utt", "utts", multiple=True, metavar="ID", help="an utterance of the store, by id (repeatable)")
@click.option("--out", "out_dir", default="sertune-explain", show_default=True, help="folder for the figures and attention.json")
@click.argument("audio", nargs=-1)
def explain(model, store, n_att, seeds, fold, utts, out_dir, audio):
    """Attention maps: per utterance MFCC, alpha_t and winning vector; vector x emotion shares on the test set."""
    import json

    import torch

    from sertune import fsutil
    from sertune.audio.features import MfccExtractor
    from sertune.errors import ConfigError, CorpusError, StoreError
    from sertune.insight import explain as ex
    from sertune.insight.models import check_store, resolve_models
    from sertune.insight.predict import audio_files, featurise, unlabelled
    from sertune.store.load import load_store

    models = resolve_models(model, n_att, seeds)
    names = sorted({m.name.rsplit("/fold=", 1)[0] for m in models})
    if len(names) > 1:
        raise ConfigError(f"--model {model}: {len(names)} models ({', '.join(names)}); choose one --seed")
    if fold >= len(models):
        raise ConfigError(f"--fold {fold}: the model has {len(models)} fold(s)")
    m = models[fold]
    location = check_store(models, store)
    if location is None and utts:
        raise StoreError(f"{m.record['store']}: the model's store is not readable; pass --store to use --utt")
    files, errors = audio_files(list(audio))
    files, mfccs, bad = featurise(files, MfccExtractor(m.features)) if files else ([], [], [])
    errors += bad
    if errors:
        raise CorpusError(errors[0])

    out = fsutil.normalize(out_dir)
    written, doc = [], {"model": m.name, "n_att": m.config.n_att, "utterances": []}
    hop = m.features.hop_ms
    selected = []
    if location is not None:
        fs = load_store(location)
        index = {u: i for i, u in enumerate(fs.meta["utt_id"])}
        missing = [u for u in utts if u not in index]
        if missing:
            raise StoreError(f"{location}: no utterance {missing[0]!r} in this store")

        def subset(ids):
            return fs.subset(torch.tensor([index[u] for u in ids], dtype=torch.int64))

        if utts:
            sub = subset(list(utts))
            selected += ex.attention(m, sub, list(utts), sub.labels.tolist())
        test_ids = [u for u in m.fold["test_utt_ids"] if u in index]
        sub = subset(test_ids)
        test = ex.attention(m, sub, test_ids, sub.labels.tolist())
        shares, counts = ex.win_shares(test, m.config.n_att, len(m.classes))
        acc = sum(u.predicted == u.label for u in test) / max(len(test), 1)
        title = (f"{m.name} (N_att = {m.config.n_att}): {len(test)} test utterances, accuracy {acc:.3f}")
        fsutil.write_bytes_atomic(fsutil.join(out, "win_shares.png"), ex.shares_png(shares, counts, title, m.classes))
        written.append("win_shares.png")
        doc["test_set"] = {"n": len(test), "counts": counts.tolist(), "win_shares": shares.tolist()}
    else:
        click.echo("Note: no readable store: the test-set figure needs one (--store)", err=True)
    if files:
        sub = unlabelled(mfccs)
        selected += ex.attention(m, sub, files, [None] * len(files))
    for u in selected:
        name = "attention_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in u.name.rsplit("/", 1)[-1]) + ".png"
        fsutil.write_bytes_atomic(fsutil.join(out, name), ex.utterance_png(u, m.config.n_att, hop, m.classes))
        written.append(name)
        doc["utterances"].append({"name": u.name, "label": u.label, "predicted": u.predicted,
                                  "alpha": u.alpha.tolist(), "winner": u.winner.tolist()})
    fsutil.write_bytes_atomic(fsutil.join(out, "attention.json"), json.dumps(doc).encode())
    click.echo(f"{len(written)} figure(s) and attention.json written to {out}: {', '.join(written)}")
