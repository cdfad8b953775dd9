"""Where a deployment's scoring model comes from: the bundled file, a path, S3 or SSM.

`SCORING_MODEL` selects it: `bundled:default`, a file path, `s3://bucket/key` or `ssm:/name`.
Models are cached per source for the life of the Lambda container (SSM and S3 for five minutes,
so a newly published model is picked up without a redeploy; a file until it changes on disk).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from leadscore.errors import ModelError, describe_validation
from leadscore.scoring.model import ScoringModel

_REMOTE_TTL_SECONDS = 300
_cache: dict[str, tuple[float, ScoringModel, tuple[int, int] | None]] = {}


M = TypeVar("M", bound=BaseModel)


def parse_document(text: str, origin: str, schema: type[M], what: str, error: type[Exception]) -> M | None:
    """YAML (or JSON) text validated as `schema`, with errors (of type `error`) that name the file
    and the field; None for an empty document."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{origin}: not valid YAML/JSON: {exc}") from exc
    if data is None:
        return None
    if not isinstance(data, dict):
        raise error(f"{origin}: a {what} must be a mapping at the top level")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise error(f"{origin}: invalid {what}: {describe_validation(exc, f'({what})')}") from exc


def parse_model(text: str, origin: str) -> ScoringModel:
    """Parse YAML or JSON text into a validated model, with errors that name the field."""
    model = parse_document(text, origin, ScoringModel, "scoring model", ModelError)
    if model is None:
        raise ModelError(f"{origin}: the scoring model is empty")
    return model


def dump_model(model: ScoringModel) -> str:
    """Human-readable YAML in the same format the loader reads."""
    data = json.loads(model.model_dump_json(exclude_defaults=True, exclude={"reference"}))
    data.setdefault("schema_version", 1)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _read(source: str) -> str:
    if source.startswith("bundled:"):
        name = source.removeprefix("bundled:")
        resource = resources.files("leadscore.models").joinpath(f"{name}.yaml")
        if not resource.is_file():
            raise ModelError(f"no bundled scoring model named {name!r}")
        return resource.read_text(encoding="utf-8")
    if source.startswith("s3://"):
        import boto3

        bucket, _, key = source.removeprefix("s3://").partition("/")
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        return str(body.decode("utf-8"))
    if source.startswith("ssm:"):
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_parameter(source.removeprefix("ssm:"), max_age=_REMOTE_TTL_SECONDS))
    path = Path(source.removeprefix("file:"))
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read scoring model {source}: {exc.strerror}") from exc


def _file_version(source: str) -> tuple[int, int] | None:
    """A local file's (mtime, size): a file rewritten in place is read again (the CLI, tests)."""
    if source.startswith(("bundled:", "s3://", "ssm:")):
        return None
    try:
        stat = Path(source.removeprefix("file:")).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def load_model(source: str = "bundled:default") -> ScoringModel:
    cached = _cache.get(source)
    remote = source.startswith(("s3://", "ssm:"))
    version = _file_version(source)
    fresh = cached is not None and cached[2] == version
    if cached and fresh and (not remote or time.monotonic() - cached[0] < _REMOTE_TTL_SECONDS):
        return cached[1]
    model = parse_model(_read(source), source)
    _cache[source] = (time.monotonic(), model, version)
    return model
