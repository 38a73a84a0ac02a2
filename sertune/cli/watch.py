"""Options for how `tune` and `sweep` are watched: the live view or Ray's reporter (--verbose),
MLflow (--mlflow), the Optuna storage (--optuna-storage, tune), and where Ray's output goes."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile

import click


def watch_options(optuna: bool = False):
    def decorate(f):
        if optuna:
            f = click.option("--optuna-storage", default=None, metavar="URL",
                             help="Optuna RDB storage of the study (e.g. postgresql://...), for optuna-dashboard  "
                                  "[default: sqlite:///<experiment>/tune/optuna.db; none for URI experiments]")(f)
        f = click.option("--mlflow", "mlflow", default=None, envvar="SERTUNE_MLFLOW_URI", metavar="URI",
                         help="log every trial as an MLflow run: sqlite:///mlflow.db, a folder or http://server  "
                              "[default: $SERTUNE_MLFLOW_URI, else off]")(f)
        f = click.option("--verbose", is_flag=True,
                         help="Ray Tune's own reporter and Ray's log in the terminal instead of sertune's live view")(f)
        return f
    return decorate


def log_path(exp: str, stage: str) -> str:
    """A local file for Ray's output: in the experiment's logs/ folder, or a temp folder for URIs."""
    from sertune import fsutil

    folder = os.path.join(tempfile.gettempdir(), "sertune-logs") if fsutil.is_uri(exp) else os.path.join(exp, "logs")
    return os.path.join(folder, f"{stage}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.log")


def check_mlflow(uri: str | None) -> None:
    """Installed and reachable, checked before anything runs (exit 2, one line)."""
    if uri is None:
        return
    from sertune.errors import ConfigError

    mlflow = import_mlflow()
    from sertune.trials.mlflow_runs import mlflow_uri

    retries = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    old = {k: os.environ.get(k) for k in retries}
    os.environ.update(retries)  # a server that is not there: say so now, not after minutes of retries
    try:
        mlflow.MlflowClient(tracking_uri=mlflow_uri(uri)).search_experiments(max_results=1)
    except Exception as e:  # any failure to reach the store: MLflow raises many kinds
        raise ConfigError(f"--mlflow {uri}: cannot open the tracking store ({_first_line(e)})") from None
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def import_mlflow():
    try:
        import mlflow
    except ImportError:
        from sertune.errors import ConfigError

        raise ConfigError("--mlflow: MLflow is not installed; pip install 'sertune[mlflow]'") from None
    return mlflow


def check_optuna_storage(url: str | None) -> None:
    if url is None:
        return
    import optuna

    from sertune.errors import ConfigError

    try:
        optuna.storages.RDBStorage(url)
    except Exception as e:  # a bad URL, a missing driver, a database that refuses
        raise ConfigError(f"--optuna-storage {url}: cannot open the storage ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else type(e).__name__


@contextlib.contextmanager
def watching(exp: str, stage: str, verbose: bool, mlflow: str | None, optuna_storage: str | None = None):
    """Yield the stage's Watch, with Ray's, MLflow's and Optuna's logs in a file unless ``verbose``."""
    from sertune import ray_runtime
    from sertune.trials.mlflow_runs import tracking_uri
    from sertune.trials.tracking import Watch

    mlflow, note = tracking_uri(exp, mlflow)
    if note:
        click.echo(note, err=True)
    if mlflow:
        import_mlflow()  # first: importing it sets up its loggers, which logs_to then redirects
    path = None if verbose else log_path(exp, stage)
    with ray_runtime.logs_to(path):
        check_mlflow(mlflow)  # opening a store logs (e.g. "Creating initial MLflow database tables")
        check_optuna_storage(optuna_storage)
        yield Watch(verbose=verbose, log_path=path, mlflow=mlflow, optuna_storage=optuna_storage)
