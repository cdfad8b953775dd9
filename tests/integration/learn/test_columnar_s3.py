"""calibrate reads its history straight from S3 (a moto server on loopback stands in for it): the
same model as from the local file, and a clear error for an object that is not there."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

pytest.importorskip("polars")

from leadscore.cli import main
from leadscore.model_store import load_model

from ...conftest import TEST_REGION

pytestmark = [pytest.mark.integration, pytest.mark.loopback]
BUCKET = "leadscore-history-test"


@pytest.fixture
def s3_endpoint(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # boto3 and Polars both honour it
        boto3.client("s3", region_name=TEST_REGION).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def _history(path: Path, n: int = 600) -> Path:
    rng = random.Random(9)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lead_id", "Source", "Visits", "Converted"])
        for i in range(n):
            source, visits = rng.choice(["Google", "Referral", "Direct"]), rng.randint(0, 12)
            logit = -1.5 + 0.3 * visits + (1.2 if source == "Referral" else 0)
            writer.writerow([f"L{i}", source, visits, int(rng.random() < 1 / (1 + 2.718 ** (-logit)))])
    return path


def _calibrate(source: str, out: Path) -> int:
    return main(["calibrate", source, "--target", "Converted", "--id-column", "lead_id", "--out", str(out)])


def test_calibrate_learns_from_an_s3_object_what_it_learns_from_the_file(
    s3_endpoint: str, tmp_path: Path
) -> None:
    local = _history(tmp_path / "history.csv")
    boto3.client("s3", region_name=TEST_REGION).upload_file(str(local), BUCKET, "exports/history.csv")

    assert _calibrate(f"s3://{BUCKET}/exports/history.csv", tmp_path / "from-s3.yaml") == 0
    assert _calibrate(str(local), tmp_path / "from-file.yaml") == 0

    from_s3, from_file = (
        load_model(str(tmp_path / "from-s3.yaml")),
        load_model(str(tmp_path / "from-file.yaml")),
    )
    assert from_s3.metadata["rows"] == 600
    assert from_s3.all_rules() == from_file.all_rules() and from_s3.stages == from_file.stages
    assert from_s3.calibration == from_file.calibration and from_s3.offset == from_file.offset


def test_an_s3_object_that_is_not_there_is_a_clear_error(
    s3_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _calibrate(f"s3://{BUCKET}/exports/absent.csv", tmp_path / "m.yaml") == 2
    assert f"s3://{BUCKET}/exports/absent.csv" in capsys.readouterr().err
    assert not (tmp_path / "m.yaml").exists()
