"""`sertune corpus` and `sertune prepare`: audio -> feature store."""

from __future__ import annotations

import os

import click

from sertune.audio.corpus import LAYOUTS

from sertune.cli.options import feature_options, ray_options
from sertune.config import FeatureConfig


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder to write the corpus into")
@click.option("--layout", type=click.Choice(list(LAYOUTS)), default="ravdess", show_default=True,
              help="file names and folders of this corpus: ravdess (Actor_XX/, 8 classes), crema-d (AudioWAV/ "
                   "and VideoDemographics.csv, 6 classes), emodb (wav/, 7 classes, at most 10 speakers)")
@click.option("--actors", type=click.IntRange(min=6), default=8, show_default=True,
              help="speakers (half male, half female; at least 3 of each for a speaker-independent split)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the voices and the noise")
@click.option("--sample-rate", type=click.IntRange(min=8000), default=16000, show_default=True, help="Hz")
def corpus(out, layout, actors, seed, sample_rate):
    """Write the built-in synthetic corpus in a real corpus's names and layout (not real speech)."""
    from sertune.audio.synthetic import write_corpus

    if layout == "emodb" and actors > 10:
        raise click.BadParameter(f"{actors}: EmoDB has 10 speakers", param_hint="--actors")
    n = write_corpus(out, actors=actors, seed=seed, sample_rate=sample_rate, layout=layout)
    click.echo(f"{out}: {n} synthetic utterances of {actors} speakers ({layout} layout)")


@click.command()
@click.option("--data", required=True,
              help="the corpus: a folder in a known layout (RAVDESS Actor_XX/*.wav, CREMA-D AudioWAV/*.wav, "
                   "EmoDB wav/*.wav; any rate, mono or stereo) or a manifest (.csv or .jsonl: path, label, speaker)")
@click.option("--store", required=True, help="store location: a path or a URI pyarrow reads (s3://, gs://, hdfs://)")
@click.option("--layout", type=click.Choice(["auto", *LAYOUTS]), default="auto", show_default=True,
              help="the folder's file-name layout (auto: the one most names fit); not with a manifest")
@click.option("--labels", help="manifest only: the class names in order (a file, one per line, or a,b,c); "
                               "default: the manifest's labels, sorted")
@click.option("--audio-root", type=click.Path(file_okay=False),
              help="manifest only: the folder its audio paths are relative to (default: the manifest's folder)")
@click.option("--force", is_flag=True, help="rebuild even if a store with the same parameters exists")
@click.option("--skip-bad", is_flag=True, help="skip unreadable files (listed in the manifest) instead of aborting")
@feature_options
@ray_options
def prepare(data, store, layout, labels, audio_root, force, skip_bad, address, num_cpus, num_gpus, **features):
    """Decode, resample and compute MFCC for a corpus into a sharded Parquet store (on Ray)."""
    from sertune import fsutil
    from sertune.audio.manifest import read_labels
    from sertune.store.prepare import prepare as run

    _check_corpus_options(data, layout, labels, audio_root)
    fsutil.check_bucket(store)  # before any audio is decoded

    _, msg = run(data, store, FeatureConfig(**features), force=force, skip_bad=skip_bad,
                 address=address, num_cpus=num_cpus, num_gpus=num_gpus, layout=layout,
                 labels=read_labels(labels) if labels else None, audio_root=audio_root)  # Ray starts only if there is work
    click.echo(msg)


def _check_corpus_options(data: str, layout: str, labels, audio_root) -> None:
    """An option that would be ignored is refused: --layout names a folder's layout, --labels and
    --audio-root belong to a manifest."""
    manifest = os.path.isfile(os.path.expanduser(data))
    if manifest and layout != "auto":
        raise click.UsageError(f"--layout {layout}: --data {data} is a manifest, which names its own labels")
    if not manifest and (labels or audio_root):
        flag = "--labels" if labels else "--audio-root"
        raise click.UsageError(f"{flag}: only with a manifest (--data FILE.csv|.jsonl); --data {data} is a folder, "
                               "whose layout fixes its labels and paths")
