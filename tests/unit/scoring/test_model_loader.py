"""Models are parsed with libyaml's safe loader where PyYAML has it: the same documents as the
pure-Python safe loader gives, so a model means the same whichever loads it."""

from __future__ import annotations

from importlib import resources

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
    with pytest.raises(ModelError, match=r"not valid YAML/JSON|invalid"):
        model_store.parse_model('{"name": "x", "version": "1", "offset": NaN}', "nan.json")
    assert model_store.read_yaml("{a: 1, b: [x]}", "flow.yaml", ModelError) == {"a": 1, "b": ["x"]}
    with pytest.raises(ModelError, match="not valid YAML/JSON"):
        model_store.read_yaml('{"a": [1, }', "broken.json", ModelError)


def test_calibrate_style_json_is_written_for_a_json_name() -> None:
    assert model_store.is_json_path("s3/learned.JSON") and not model_store.is_json_path("learned.yaml")
