"""`sertune corpus` and `sertune prepare`: audio -> feature store."""

from __future__ import annotations

import click

from sertune.cli.options import feature_options, ray_options
from sertune.config import FeatureConfig


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder to write Actor_XX/*.wav into")
@click.option("--actors", type=click.IntRange(min=6), default=8, show_default=True,
              help="actors (half male, half female; at least 3 of each for a speaker-independent split)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the voices and the noise")
@click.option("--sample-rate", type=click.IntRange(min=8000), default=16000, show_default=True, help="Hz")
def corpus(out, actors, seed, sample_rate):
    """Write the built-in synthetic corpus (RAVDESS names and layout; not real speech)."""
    from sertune.audio.synthetic import write_corpus

    n = write_corpus(out, actors=actors, seed=seed, sample_rate=sample_rate)
    click.echo(f"{out}: {n} synthetic utterances of {actors} actors")


@click.command()
@click.option("--data", required=True, help="RAVDESS-layout folder (Actor_XX/*.wav|flac, any rate, mono or stereo)")
@click.option("--store", required=True, help="store location: a path or a URI pyarrow reads (s3://, gs://, hdfs://)")
@click.option("--force", is_flag=True, help="rebuild even if a store with the same parameters exists")
@click.option("--skip-bad", is_flag=True, help="skip unreadable files (listed in the manifest) instead of aborting")
@feature_options
@ray_options
def prepare(data, store, force, skip_bad, address, num_cpus, num_gpus, **features):
    """Decode, resample and compute MFCC for a corpus into a sharded Parquet store (on Ray)."""
    from sertune import fsutil
    from sertune.store.prepare import prepare as run

    fsutil.check_bucket(store)  # before any audio is decoded

    _, msg = run(data, store, FeatureConfig(**features), force=force, skip_bad=skip_bad,
                 address=address, num_cpus=num_cpus, num_gpus=num_gpus)  # Ray starts only if there is work
    click.echo(msg)
