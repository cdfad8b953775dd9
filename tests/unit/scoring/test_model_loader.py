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
