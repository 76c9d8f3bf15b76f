import json

import pytest

from edgeprune.errors import PlanError
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget
from edgeprune.pruning.one_shot import prune_one_shot
from edgeprune.pruning.plan import PruningPlan
from edgeprune.pruning.slim import slim


@pytest.fixture(scope="module")
def plan():
    model, shape = build_model("edgeprune:resnet20")
    return prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("flops=0.5"), 1).plan


def test_json_round_trip(plan, tmp_path):
    plan.save(tmp_path / "plan.json")
    assert PruningPlan.load(tmp_path / "plan.json") == plan
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["schema"] == "edgeprune.plan/1" and data["model"]["spec"] == "edgeprune:resnet20"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema="edgeprune.plan/99"), "'schema' must be"),
        (lambda d: d.pop("groups"), "'groups' must be a list"),
        (lambda d: d["groups"][0].update(kept=[]), r"groups\[0\].kept is empty"),
        (lambda d: d["groups"][1].update(kept=[0, 0]), r"groups\[1\].kept has duplicate"),
        (lambda d: d["groups"][2].update(kept=[999]), r"groups\[2\].kept has indices outside"),
        (lambda d: d["groups"][0].update(kept=[True]), r"groups\[0\].kept must be a list of integers"),
        (lambda d: d["groups"][0].update(kept=[0.0]), r"groups\[0\].kept must be a list of integers"),
        (lambda d: d["model"].update(input_shape="1x1x28x28"), "'model.input_shape'"),
    ],
)
def test_malformed_plan_names_the_field(plan, tmp_path, mutate, message):
    data = plan.to_json()
    mutate(data)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=message):
        PruningPlan.load(path)


def test_not_json(tmp_path):
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        PruningPlan.load(tmp_path / "plan.json")


def test_plan_for_another_model_is_rejected(plan):
    other, _ = build_model("edgeprune:resnet56")
    with pytest.raises(PlanError, match="made for edgeprune:resnet20"):
        slim(other, plan)
