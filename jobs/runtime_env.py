"""Prints the runtime environment (JSON) that jobs/submit.sh gives a job: the job's driver and
every trial and task it starts, on every node, run with it.

- PYTHONUNBUFFERED=1 (live logs);
- the S3 endpoint and region of the submitting shell, when set (AWS_ENDPOINT_URL,
  AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_DEFAULT_REGION): MinIO and other S3-compatible stores;
- with SERTUNE_FORWARD_AWS_CREDENTIALS=1 also AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
  AWS_SESSION_TOKEN. Off by default: a runtime environment is shown in the dashboard and the
  job's info to everyone holding the cluster's token. On AWS the nodes' IAM instance profile
  needs no keys at all;
- SERTUNE_WORKING_DIR: this checkout as the job's working_dir;
- SERTUNE_RUNTIME_ENV_JSON: anything else, merged last (its env_vars over these).
"""

import json
import os
import sys

ENDPOINT_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def runtime_env(environ) -> dict:
    forward = ENDPOINT_VARS + (CREDENTIAL_VARS if environ.get("SERTUNE_FORWARD_AWS_CREDENTIALS") == "1" else ())
    env = {"env_vars": {"PYTHONUNBUFFERED": "1", **{k: environ[k] for k in forward if environ.get(k)}}}
    if environ.get("SERTUNE_WORKING_DIR"):
        env["working_dir"] = os.path.abspath(environ["SERTUNE_WORKING_DIR"])
        env["excludes"] = [".git", "**/__pycache__", "**/.pytest_cache", "*.egg-info", "sertune-experiment"]
    try:
        extra = json.loads(environ.get("SERTUNE_RUNTIME_ENV_JSON") or "{}")
    except ValueError as e:
        sys.exit(f"error: SERTUNE_RUNTIME_ENV_JSON is not JSON ({e})")
    env["env_vars"].update(extra.pop("env_vars", {}))
    env.update(extra)
    return env


if __name__ == "__main__":
    print(json.dumps(runtime_env(os.environ)))
