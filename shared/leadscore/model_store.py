"""Where a deployment's scoring models come from: the bundled file, a path, S3 or SSM.

`SCORING_MODEL` selects it: `bundled:default`, a file or folder path, `s3://bucket/key` or
`ssm:/name`. The document is either one scoring model or a catalog of models (`models:` at the
top level, see `leadscore.scoring.catalog`); a folder holds `catalog.yaml`. A catalog entry gives
its model inline (`model:`) or names a file next to the catalog (`file: enterprise.yaml`: bundled,
local and S3 catalogs; an SSM catalog is inline). Catalogs are cached per source for the life of
the Lambda container (SSM and S3 for five minutes, so a newly published model is picked up without
a redeploy; a file until it changes on disk).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from leadscore.errors import ModelError, describe_validation
from leadscore.scoring.catalog import Catalog
from leadscore.scoring.model import ScoringModel

_REMOTE_TTL_SECONDS = 300
CATALOG_FILE = "catalog.yaml"


@dataclass(frozen=True)
class _Cached:
    loaded_at: float  # time.monotonic()
    catalog: Catalog
    version: tuple[int, int] | None  # a local file's (mtime, size)
    text_digest: str  # sha256 of the document's text
    siblings: tuple[str, ...]  # the files it names, in order
    sibling_digests: tuple[str, ...]  # and theirs


_cache: dict[str, _Cached] = {}


M = TypeVar("M", bound=BaseModel)


# libyaml's loader where PyYAML was built with it (its wheels are): the same documents, parsed
# about ten times faster than the pure-Python loader (a learned model's YAML is hundreds of KB).
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _NotFinite(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotFinite(f"{name} is not a number a model may hold (numbers must be finite)")


def read_yaml(text: str, origin: str, error: type[Exception]) -> Any:
    """YAML (or JSON) text as data, with an error (of type `error`) that names the file.

    A JSON document (an object) is read by the json module: the same data as YAML gives for it,
    read about forty times faster (a learned model published as JSON loads in tens of
    milliseconds, see `dump_model`). JSON's NaN and Infinity are refused here (and any
    non-finite number by the model's validation). Anything else, or JSON that does not parse,
    is read as YAML, whose reader says what is wrong."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text, parse_constant=_no_constant)
        except _NotFinite as exc:
            raise error(f"{origin}: {exc}") from exc
        except ValueError:
            pass  # YAML flow style, or broken JSON: the YAML reader says what is wrong
    try:
        return yaml.load(text, Loader=_LOADER)  # a safe loader, C or Python
    except yaml.YAMLError as exc:
        raise error(f"{origin}: not valid YAML/JSON: {exc}") from exc


def _validated(data: Any, origin: str, schema: type[M], what: str, error: type[Exception]) -> M:
    if not isinstance(data, dict):
        raise error(f"{origin}: a {what} must be a mapping at the top level")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise error(f"{origin}: invalid {what}: {describe_validation(exc, f'({what})')}") from exc


def parse_document(text: str, origin: str, schema: type[M], what: str, error: type[Exception]) -> M | None:
    """YAML (or JSON) text validated as `schema`, with errors (of type `error`) that name the file
    and the field; None for an empty document."""
    data = read_yaml(text, origin, error)
    return None if data is None else _validated(data, origin, schema, what, error)


def parse_model(text: str, origin: str) -> ScoringModel:
    """Parse YAML or JSON text into a validated model, with errors that name the field."""
    model = parse_document(text, origin, ScoringModel, "scoring model", ModelError)
    if model is None:
        raise ModelError(f"{origin}: the scoring model is empty")
    return model


def parse_catalog(text: str, origin: str, read_sibling: Any = None) -> Catalog:
    """YAML or JSON text as a catalog: a document with `models:` is one, any other document is a
    single scoring model (a one-model catalog). `read_sibling(name)` reads a file an entry names."""
    data = read_yaml(text, origin, ModelError)
    if data is None:
        raise ModelError(f"{origin}: the scoring model is empty")
    if not isinstance(data, dict):
        raise ModelError(f"{origin}: a scoring model or catalog must be a mapping at the top level")
    if "models" not in data:
        return Catalog.of(_validated(data, origin, ScoringModel, "scoring model", ModelError))
    entries = data.get("models")
    if isinstance(entries, list):
        data = {**data, "models": [_inline(entry, origin, read_sibling) for entry in entries]}
    return _validated(data, origin, Catalog, "catalog", ModelError)


def _inline(entry: Any, origin: str, read_sibling: Any) -> Any:
    """A catalog entry with its `file:` read and parsed in place of `model:`."""
    if not isinstance(entry, dict) or "file" not in entry:
        return entry
    name, which = str(entry["file"]), f"{origin}: entry {entry.get('id')!r}"
    if read_sibling is None:
        raise ModelError(f"{which} names a file, but this source takes inline models only")
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelError(f"{which}: file {name!r} must be a plain name next to the catalog")
    model = parse_model(read_sibling(name), f"{origin} -> {name}")
    rest = {k: v for k, v in entry.items() if k != "file"}
    return {**rest, "model": model}


def dump_model(model: ScoringModel, *, as_json: bool = False) -> str:
    """The model in the format the loader reads: human-readable YAML, or JSON (`as_json`: the same
    data, for a learned model published to S3, where it loads ten times faster than YAML)."""
    data = json.loads(model.model_dump_json(exclude_defaults=True, exclude={"reference"}))
    data.setdefault("schema_version", 1)
    if as_json:
        return json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def is_json_path(path: str | Path) -> bool:
    """Whether a model written to `path` is written as JSON (by its name: `*.json`)."""
    return str(path).casefold().endswith(".json")


def _read(source: str) -> tuple[str, Any]:
    """The document's text, and how to read a file next to it (None: inline models only)."""
    if source.startswith("bundled:"):
        name = source.removeprefix("bundled:")
        folder = resources.files("leadscore.models")
        resource = folder.joinpath(f"{name}.yaml")
        if not resource.is_file():
            raise ModelError(f"no bundled scoring model named {name!r}")

        def bundled(sibling: str) -> str:
            found = folder.joinpath(sibling)
            if not found.is_file():
                raise ModelError(f"no bundled scoring model file {sibling!r}")
            return found.read_text(encoding="utf-8")

        return resource.read_text(encoding="utf-8"), bundled
    if source.startswith("s3://"):
        import boto3

        bucket, _, key = source.removeprefix("s3://").partition("/")
        client = boto3.client("s3")

        def s3_object(object_key: str) -> str:
            return str(client.get_object(Bucket=bucket, Key=object_key)["Body"].read().decode("utf-8"))

        prefix = key.rpartition("/")[0]
        return s3_object(key), lambda sibling: s3_object(f"{prefix}/{sibling}" if prefix else sibling)
    if source.startswith("ssm:"):
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_parameter(source.removeprefix("ssm:"), max_age=_REMOTE_TTL_SECONDS)), None
    path = _document_path(source)

    def local(sibling: str) -> str:
        return _read_file(path.parent / sibling, source)

    return _read_file(path, source), local


def _document_path(source: str) -> Path:
    path = Path(source.removeprefix("file:"))
    return path / CATALOG_FILE if path.is_dir() else path


def _read_file(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read scoring model {source}: {exc.strerror} ({path.name})") from exc


def _file_version(source: str) -> tuple[int, int] | None:
    """A local file's (mtime, size): a file rewritten in place is read again (the CLI, tests)."""
    if source.startswith(("bundled:", "s3://", "ssm:")):
        return None
    path = _document_path(source)
    try:  # a folder's catalog and the model files beside it: any of them rewritten counts
        siblings = [*path.parent.glob("*.y*ml"), *path.parent.glob("*.json")]
        stats = [p.stat() for p in sorted(siblings)] if path.name == CATALOG_FILE else []
        stat = path.stat()
    except OSError:
        return None
    newest = max([stat.st_mtime_ns, *(s.st_mtime_ns for s in stats)])
    return newest, stat.st_size + sum(s.st_size for s in stats)


def load_catalog(source: str = "bundled:default") -> Catalog:
    """The catalog at `source` (a single model is a one-model catalog), cached (see above). A remote
    source read again after its five minutes is parsed again only if its text (or a file it
    names) changed: an unchanged learned model costs its reads, not a parse and a compile."""
    cached = _cache.get(source)
    remote = source.startswith(("s3://", "ssm:"))
    version = _file_version(source)
    fresh = cached is not None and cached.version == version
    if cached and fresh and (not remote or time.monotonic() - cached.loaded_at < _REMOTE_TTL_SECONDS):
        return cached.catalog
    text, read_sibling = _read(source)
    read: dict[str, str] = {}  # the files the document names, as read this time
    if cached is not None and fresh and cached.text_digest == _digest(text):
        unchanged = _siblings_unchanged(cached, read_sibling, read)
        if unchanged:
            _cache[source] = replace(cached, loaded_at=time.monotonic())
            return cached.catalog

    def sibling(name: str) -> str:
        assert read_sibling is not None
        if name not in read:
            read[name] = read_sibling(name)
        return read[name]

    names: list[str] = []

    def recorded(name: str) -> str:
        names.append(name)
        return sibling(name)

    catalog = parse_catalog(text, source, None if read_sibling is None else recorded)
    digests = tuple(_digest(read[name]) for name in names)
    _cache[source] = _Cached(time.monotonic(), catalog, version, _digest(text), tuple(names), digests)
    return catalog


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _siblings_unchanged(cached: _Cached, read_sibling: Any, read: dict[str, str]) -> bool:
    """Whether the files an unchanged document names are unchanged too (read into `read`). A file
    that cannot be read counts as changed: the document is parsed again, and says what is wrong."""
    for name, digest in zip(cached.siblings, cached.sibling_digests, strict=True):
        try:
            read[name] = read_sibling(name)
        except Exception:
            return False
        if _digest(read[name]) != digest:
            return False
    return True


def load_model(source: str = "bundled:default") -> ScoringModel:
    """The primary model of the catalog (or the one model) at `source`."""
    return load_catalog(source).primary.model
