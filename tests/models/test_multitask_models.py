"""Multi-task models: output layout, ESMM's exact probability product, and config errors naming the fix."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from recforge.batch import Batch
from recforge.config import ModelConfig, build_config
from recforge.errors import ConfigError
from recforge.features import FeatureSet
from recforge.models import build_model
from recforge.models.multitask.esmm import product_logit
from recforge.schema import InputSchema


@pytest.fixture(scope="module")
def tiny() -> tuple[InputSchema, Batch]:
    cfg = build_config(
        {
            "features": [
                {"name": "user_id", "kind": "id", "side": "user"},
                {"name": "item_id", "kind": "id", "side": "item"},
                {"name": "price", "kind": "numeric", "side": "item", "transform": "log"},
            ],
            "tasks": [{"name": "ctr", "label": "click"}, {"name": "ctcvr", "label": "buy"}],
        }
    )
    n = 64
    gen = torch.Generator().manual_seed(0)
    table = pa.table(
        {
            "user_id": [f"u{i % 7}" for i in range(n)],
            "item_id": [f"i{i % 11}" for i in range(n)],
            "price": torch.rand(n, generator=gen).mul(100).tolist(),
            "click": [i % 2 for i in range(n)],
            "buy": [int(i % 6 == 0) for i in range(n)],
        }
    )
    fs = FeatureSet.from_config(cfg).fit([table])
    assert fs.labels == ("click", "buy")
    return fs.schema(), fs.transform(table)


@pytest.mark.parametrize("name", ["mmoe", "ple", "esmm", "dbmtl"])
def test_outputs_one_logit_column_per_task(name: str, tiny) -> None:
    schema, batch = tiny
    torch.manual_seed(0)
    model = build_model(schema, ModelConfig(name=name), tasks=("ctr", "ctcvr")).eval()
    out = model(batch)
    assert out.shape == (batch.size, 2) and torch.isfinite(out).all()
    assert out[:, 0].std() > 0 and out[:, 1].std() > 0  # the towers see the inputs
    assert not torch.equal(out[:, 0], out[:, 1])


def test_esmm_ctcvr_is_exactly_ctr_times_cvr(tiny) -> None:
    schema, batch = tiny
    torch.manual_seed(0)
    model = build_model(schema, ModelConfig(name="esmm"), tasks=("ctr", "ctcvr")).eval()
    with torch.no_grad():
        out = model(batch).double()
        p_ctr, p_ctcvr = torch.sigmoid(out[:, 0]), torch.sigmoid(out[:, 1])
        p_cvr = torch.sigmoid(model.cvr_logits(batch).double())
    torch.testing.assert_close(p_ctcvr, p_ctr * p_cvr, rtol=0, atol=1e-6)
    assert (p_ctcvr <= p_ctr).all()
    # task order follows the config: the ctcvr task listed first gets column 0
    torch.manual_seed(0)
    swapped = build_model(schema, ModelConfig(name="esmm"), tasks=("ctcvr", "ctr")).eval()
    with torch.no_grad():
        torch.testing.assert_close(swapped(batch).flip(1), model(batch), rtol=0, atol=0)


def test_product_logit_holds_at_extreme_logits() -> None:
    a = torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0, 30.0], dtype=torch.float64)
    b = torch.tensor([-30.0, 2.0, 0.0, -5.0, 30.0, -30.0], dtype=torch.float64)
    p = torch.sigmoid(product_logit(a, b))
    torch.testing.assert_close(p, torch.sigmoid(a) * torch.sigmoid(b), rtol=1e-9, atol=1e-12)


def test_single_task_model_refuses_two_tasks(tiny) -> None:
    with pytest.raises(ConfigError, match=r"model\.name: 'deepfm' predicts one objective but 2 tasks") as err:
        build_model(tiny[0], ModelConfig(name="deepfm"), tasks=("ctr", "ctcvr"))
    assert "mmoe" in str(err.value) and "esmm" in str(err.value)


def test_multitask_model_needs_tasks(tiny) -> None:
    with pytest.raises(ConfigError, match=r"tasks: model 'mmoe' is multi-task and needs a `tasks:` block"):
        build_model(tiny[0], ModelConfig(name="mmoe"))


def test_esmm_names_its_two_tasks(tiny) -> None:
    with pytest.raises(ConfigError, match=r"esmm learns exactly two tasks.*\['ctr', 'purchase'\]"):
        build_model(tiny[0], ModelConfig(name="esmm"), tasks=("ctr", "purchase"))
    model = build_model(tiny[0], ModelConfig(name="esmm", ctcvr="purchase"), tasks=("ctr", "purchase"))
    assert model(tiny[1]).shape == (tiny[1].size, 2)


def test_dbmtl_depends_only_on_earlier_tasks(tiny) -> None:
    with pytest.raises(ConfigError, match=r"model\.depends\.ctr: 'ctcvr' is not a task listed before 'ctr'"):
        build_model(tiny[0], ModelConfig(name="dbmtl", depends={"ctr": ["ctcvr"]}), tasks=("ctr", "ctcvr"))
    with pytest.raises(ConfigError, match=r"model\.depends\.cvr: is not a task"):
        build_model(tiny[0], ModelConfig(name="dbmtl", depends={"cvr": []}), tasks=("ctr", "ctcvr"))
    free = build_model(tiny[0], ModelConfig(name="dbmtl", depends={}), tasks=("ctr", "ctcvr"))
    assert free.parents == [[], []]
    chained = build_model(tiny[0], ModelConfig(name="dbmtl"), tasks=("ctr", "ctcvr"))
    assert chained.parents == [[], [0]]
