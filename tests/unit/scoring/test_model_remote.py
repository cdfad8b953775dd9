"""A model (or catalog) in S3 or SSM is read again every five minutes, and parsed again only when
its text, or a file it names, changed: an unchanged learned model costs its reads, never a parse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from leadscore import model_store

pytestmark = pytest.mark.unit
CATALOG = "name: c\nmodels:\n  - {id: main, file: main.json}\n"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    now = [1_000.0]
    monkeypatch.setattr(model_store.time, "monotonic", lambda: now[0])
    model_store._cache.clear()
    parameters.clear_caches()
    yield now
    model_store._cache.clear()
    parameters.clear_caches()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    parse = model_store.parse_catalog

    def counted(text: str, origin: str, read_sibling: Any = None) -> Any:
        if origin.startswith(("s3://", "ssm:")):
            seen.append(origin)
        return parse(text, origin, read_sibling)

    monkeypatch.setattr(model_store, "parse_catalog", counted)
    return seen


def _model(version: str) -> str:
    model = model_store.load_model("bundled:default").model_copy(update={"version": version})
    return model_store.dump_model(model, as_json=True)


SOURCE = "s3://models/live/catalog.yaml"


@pytest.fixture
def s3(aws: None) -> Any:
    """A bucket holding a catalog (`SOURCE`) that names one model file, main.json (version v1)."""
    client = boto3.client("s3")
    client.create_bucket(Bucket="models")
    client.put_object(Bucket="models", Key="live/catalog.yaml", Body=CATALOG.encode())
    client.put_object(Bucket="models", Key="live/main.json", Body=_model("v1").encode())
    return client


def test_an_unchanged_s3_catalog_is_not_parsed_again(s3: Any, clock: list[float], parses: list[str]) -> None:

    first = model_store.load_catalog(SOURCE)
    clock[0] += 301  # past the five minutes: read again, unchanged
    assert model_store.load_catalog(SOURCE) is first
    assert len(parses) == 1

    s3.put_object(Bucket="models", Key="live/main.json", Body=_model("v2").encode())  # a file it names
    assert model_store.load_catalog(SOURCE) is first  # still within the refreshed five minutes
    clock[0] += 301
    changed = model_store.load_catalog(SOURCE)
    assert changed.primary.model.version == "v2" and len(parses) == 2


def test_an_unchanged_ssm_model_is_not_parsed_again(aws: None, clock: list[float], parses: list[str]) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/leadscore/model", Value=_model("v1"), Type="String", Tier="Advanced")
    first = model_store.load_catalog("ssm:/leadscore/model")
    clock[0] += 301
    parameters.clear_caches()
    assert model_store.load_catalog("ssm:/leadscore/model") is first and len(parses) == 1

    ssm.put_parameter(
        Name="/leadscore/model", Value=_model("v3"), Type="String", Overwrite=True, Tier="Advanced"
    )
    clock[0] += 301
    parameters.clear_caches()
    assert model_store.load_catalog("ssm:/leadscore/model").primary.model.version == "v3"
    assert len(parses) == 2


def test_a_catalog_republished_with_other_files_loads_the_new_ones(
    s3: Any, clock: list[float], parses: list[str]
) -> None:
    """The document is compared first: a catalog that now names other files (the old ones
    deleted) is parsed again, never stuck on reading files it no longer names."""
    model_store.load_catalog(SOURCE)

    renamed = CATALOG.replace("main.json", "main-v2.json")
    s3.put_object(Bucket="models", Key="live/main-v2.json", Body=_model("v2").encode())
    s3.put_object(Bucket="models", Key="live/catalog.yaml", Body=renamed.encode())
    s3.delete_object(Bucket="models", Key="live/main.json")
    clock[0] += 301

    assert model_store.load_catalog(SOURCE).primary.model.version == "v2"
    assert len(parses) == 2


def test_a_file_it_names_that_cannot_be_read_any_more_is_reported(
    s3: Any, clock: list[float], parses: list[str]
) -> None:
    model_store.load_catalog(SOURCE)
    s3.delete_object(Bucket="models", Key="live/main.json")
    clock[0] += 301

    with pytest.raises(Exception, match=r"NoSuchKey|does not exist"):
        model_store.load_catalog(SOURCE)
