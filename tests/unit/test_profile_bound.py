"""Every profile item has a worst case below DynamoDB's 400 KB, whatever arrives, and a model
whose worst case would not fit is refused before it is published."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore import cli
from leadscore.model_store import dump_model, load_model
from leadscore.repository.profiles import worst_case_item, worst_case_size
from leadscore.repository.sizes import MAX_ITEM_BYTES
from leadscore.scoring import engine
from leadscore.scoring.model import AttributeRule, ScoringModel

pytestmark = pytest.mark.unit


def _reading(model: ScoringModel, attributes: int) -> ScoringModel:
    """The model plus fit rules reading `attributes` more custom attributes."""
    data = model.model_dump()
    data["version"] = f"{model.version}+{attributes}"
    data["fit"]["rules"] += [
        AttributeRule(id=f"custom_{n}", attribute=f"custom_{n}", values={"yes": 1}).model_dump()
        for n in range(attributes)
    ]
    return ScoringModel.model_validate(data)


def test_the_default_models_worst_case_profile_is_far_below_400_kb() -> None:
    model = load_model()

    item = worst_case_item(model)

    assert worst_case_size(model) < MAX_ITEM_BYTES // 4
    kept = {key.removeprefix("attr:") for key in item if key.startswith("attr:")}
    assert kept == engine.profile_attributes(model)  # every attribute a profile can hold, at its longest


def test_the_worst_case_grows_with_what_the_model_reads() -> None:
    model = load_model()

    assert worst_case_size(_reading(model, 10)) > worst_case_size(model) + 10 * 2_000


def test_validate_model_refuses_a_model_whose_profiles_could_outgrow_an_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "greedy.yaml"
    path.write_text(dump_model(_reading(load_model(), 250)))

    status = cli.main(["validate-model", str(path)])

    assert status == 2
    assert "over DynamoDB's 409,600" in capsys.readouterr().err
    assert cli.main(["validate-model"]) == 0


def _copies(tmp_path: Path, count: int) -> Path:
    """A catalog of `count` copies of the default model, each its own id."""
    folder = tmp_path / f"catalog-{count}"
    folder.mkdir()
    (folder / "default.yaml").write_text(dump_model(load_model()), encoding="utf-8")
    entries = "\n".join(f"  - {{id: m{n}, file: default.yaml}}" for n in range(count))
    (folder / "catalog.yaml").write_text(f"name: copies\nmodels:\n{entries}\n", encoding="utf-8")
    return folder


def test_a_catalog_bounds_the_one_profile_item_and_the_longest_write_it_makes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from leadscore.model_store import load_catalog
    from leadscore.repository.profiles import MAX_EXPRESSION_CHARS, worst_case_update_length

    two, twelve = load_catalog(str(_copies(tmp_path, 2))), load_catalog(str(_copies(tmp_path, 12)))
    one = load_model()
    # every other model adds its own accumulators and stage fields to the one item
    assert worst_case_size(one) < worst_case_size(two) < worst_case_size(twelve) < MAX_ITEM_BYTES
    assert any(key.endswith("@m1") for key in worst_case_item(two))
    # a rescore sets every model's state in one update expression: twelve of these are too many
    assert worst_case_update_length(two) < MAX_EXPRESSION_CHARS < worst_case_update_length(twelve)
    assert cli.main(["validate-model", str(_copies(tmp_path, 3))]) == 0
    capsys.readouterr()
    assert cli.main(["validate-model", str(tmp_path / "catalog-12")]) == 2
    assert "update expression" in capsys.readouterr().err
