"""Models are parsed with libyaml's safe loader where PyYAML has it: the same documents as the
pure-Python safe loader gives, so a model means the same whichever loads it."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from leadscore import model_store
from leadscore.errors import ModelError

BUNDLED = sorted(p.name for p in resources.files("leadscore.models").iterdir() if p.name.endswith(".yaml"))


def test_the_c_loader_is_used_when_pyyaml_has_it() -> None:
    assert yaml.__with_libyaml__  # the wheels ship it (Lambda's arm64 ones too)
    assert model_store._LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_document_reads_the_same_with_either_safe_loader(name: str) -> None:
    text = resources.files("leadscore.models").joinpath(name).read_text(encoding="utf-8")
    assert model_store.read_yaml(text, name, ModelError) == yaml.load(text, Loader=yaml.SafeLoader)


def test_what_a_safe_loader_refuses_the_c_one_refuses_too() -> None:
    with pytest.raises(ModelError, match="not valid YAML/JSON"):
        model_store.parse_model("!!python/object/apply:os.system ['true']", "evil.yaml")


def test_a_json_model_reads_as_the_same_data_as_its_yaml() -> None:
    model = model_store.load_model("bundled:default")
    as_json = model_store.dump_model(model, as_json=True)
    assert as_json.lstrip().startswith("{")
    assert model_store.parse_model(as_json, "m.json") == model_store.parse_model(
        model_store.dump_model(model), "m.yaml"
    )


def test_json_refuses_nan_and_infinity_and_yaml_flow_style_still_reads() -> None:
    with pytest.raises(ModelError, match="must be finite"):
        model_store.parse_model('{"name": "x", "version": "1", "offset": NaN}', "nan.json")
    assert model_store.read_yaml("{a: 1, b: [x]}", "flow.yaml", ModelError) == {"a": 1, "b": ["x"]}
    with pytest.raises(ModelError, match="not valid YAML/JSON"):
        model_store.read_yaml('{"a": [1, }', "broken.json", ModelError)


def test_calibrate_style_json_is_written_for_a_json_name() -> None:
    assert model_store.is_json_path("s3/learned.JSON") and not model_store.is_json_path("learned.yaml")


@pytest.mark.parametrize(
    ("spelling", "as_json"),
    [("NaN", True), ("-Infinity", True), ("1e400", True), (".nan", False), ("-.inf", False)],
)
def test_a_model_with_a_number_that_is_not_finite_is_refused(spelling: str, as_json: bool) -> None:
    """NaN or infinity in a bound or points would make scores NaN or break the order of bounds."""
    data = json.loads(model_store.dump_model(model_store.load_model("bundled:default"), as_json=True))
    data["fit"]["rules"][0]["missing"] = "__number__"
    text = json.dumps(data) if as_json else yaml.safe_dump(data)
    with pytest.raises(ModelError, match="finite"):
        model_store.parse_model(text.replace('"__number__"', spelling).replace("__number__", spelling), "m")


def test_a_folder_catalog_reads_a_rewritten_json_model_again(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "catalog.yaml").write_text(
        "name: c\nmodels:\n  - {id: main, file: main.json}\n", encoding="utf-8"
    )
    model = model_store.load_model("bundled:default")
    (folder / "main.json").write_text(model_store.dump_model(model, as_json=True), encoding="utf-8")
    assert model_store.load_model(str(folder)).version == model.version

    renamed = model.model_copy(update={"version": "rewritten-and-longer"})
    (folder / "main.json").write_text(model_store.dump_model(renamed, as_json=True), encoding="utf-8")
    assert model_store.load_model(str(folder)).version == "rewritten-and-longer"
