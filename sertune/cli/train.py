"""`sertune train`: one training run without Ray."""

from __future__ import annotations

import click

from sertune.cli.options import overrides, store_option, train_options
from sertune.config import TrainConfig


@click.command()
@store_option
@click.option("--out", default="sertune-train", show_default=True, help="folder for result.json, model.pt and predictions/")
@train_options()
def train(store, out, **opts):
    """Train one model without Ray; print validation and test UAR; save the result and weights."""
    import json

    from sertune import fsutil, predictions, results
    from sertune.insight.models import save_model
    from sertune.preflight import check_writable
    from sertune.provenance import code_version
    from sertune.store.load import load_store
    from sertune.training.loop import pick_device, train as run

    cfg = overrides(TrainConfig(), opts)
    out = fsutil.normalize(out)
    fsutil.check_bucket(out)  # before training, not after
    check_writable(out, "--out")
    pick_device(cfg.device)
    fs = load_store(store)

    def show(m, _run):
        click.echo(f"epoch {m['epoch']:3d}  loss {m['train_loss']:.4f}  val UAR {m['val_uar']:.4f}  "
                   f"best {m['best_val_uar']:.4f}  {m['epoch_time_s']:.2f}s")

    result = run(cfg, fs, on_epoch=show)
    row = results.result_row(cfg, result, fs.manifest, code_version())
    save_model(fsutil.join(out, "model.pt"), result.checkpoint, store)  # weights first: a result.json always has its model
    predictions.write_run(fsutil.join(out, "predictions"), cfg.n_att, cfg.seed, result.predictions)  # and its predictions
    fsutil.write_bytes_atomic(fsutil.join(out, "result.json"), json.dumps({**row, "history": result.history}, indent=2).encode())
    click.echo(f"val UAR {result.val_uar:.4f} (best epoch {result.best_epoch})  "
               f"test UAR {result.uar:.4f}  -> {fsutil.join(out, 'result.json')}")
