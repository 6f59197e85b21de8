"""Contract checks every registered model passes; a newly registered model is enrolled automatically."""

from __future__ import annotations

import inspect
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from recforge.batch import Batch
from recforge.config import ModelConfig, build_config
from recforge.errors import ConfigError
from recforge.features import FeatureSet
from recforge.models import MODELS, build_model
from recforge.models.registry import MULTITASK
from recforge.schema import InputSchema
from recforge.state_io import load_state, save_state


@pytest.fixture(scope="module")
def tiny() -> tuple[InputSchema, Batch]:
    cfg = build_config(
        {
            "features": [
                {"name": "user_id", "kind": "id", "side": "user"},
                {"name": "item_id", "kind": "id", "side": "item"},
                {"name": "price", "kind": "numeric", "side": "item", "transform": "log"},
                {"name": "genre", "kind": "tag", "side": "item", "sep": "|"},
                {"name": "history", "kind": "sequence", "of": "item_id", "side": "user", "max_len": 4},
            ]
        }
    )
    table = pa.table(
        {
            "user_id": ["u1", "u2", "u3", "u1"],
            "item_id": ["a", "b", "a", "c"],
            "price": [1.0, 20.0, 3.5, None],
            "genre": ["x|y", "y", "", "z"],
            "history": [["a"], [], ["b", "c", "a"], ["a", "b"]],
            "label": [1, 0, 1, 0],
        }
    )
    fs = FeatureSet.from_config(cfg).fit([table])
    return fs.schema(), fs.transform(table)


TASKS = ("ctr", "ctcvr")  # multi-task models are built with these two tasks


def build(name: str, schema: InputSchema, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(schema, ModelConfig(name=name), tasks=TASKS if name in MULTITASK else ())


def check_output_shape(name: str, schema: InputSchema, batch: Batch) -> None:
    out = build(name, schema, 0)(batch)
    shape = (batch.size, len(TASKS)) if name in MULTITASK else (batch.size,)
    assert out.shape == shape and out.dtype == torch.float32 and torch.isfinite(out).all()


def check_seed_determinism(name: str, schema: InputSchema, batch: Batch) -> None:
    torch.testing.assert_close(
        build(name, schema, 3).eval()(batch), build(name, schema, 3).eval()(batch), rtol=0, atol=0
    )


def check_weights_roundtrip(name: str, schema: InputSchema, batch: Batch, tmp: Path) -> None:
    a, b = build(name, schema, 0).eval(), build(name, schema, 1).eval()
    save_state(a.state_dict(), tmp / "w")
    b.load_state_dict(load_state(tmp / "w"))
    torch.testing.assert_close(b(batch), a(batch), rtol=0, atol=0)


def check_eval_has_no_dropout_noise(name: str, schema: InputSchema, batch: Batch) -> None:
    model = build(name, schema, 0).eval()
    torch.testing.assert_close(model(batch), model(batch), rtol=0, atol=0)


def check_gradients_reach_embeddings(name: str, schema: InputSchema, batch: Batch) -> None:
    model = build(name, schema, 0).train()
    model(batch).sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if "weight" in n and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def check_config_rejects_unknown_keys(name: str, schema: InputSchema, batch: Batch) -> None:
    with pytest.raises(ConfigError, match=r"model\.no_such_option"):
        build_model(schema, ModelConfig(name=name, no_such_option=1), tasks=TASKS if name in MULTITASK else ())


def check_file_reads_in_one_sitting(name: str, schema: InputSchema, batch: Batch) -> None:
    source = inspect.getsource(inspect.getmodule(MODELS.get(name)))  # type: ignore[arg-type]
    assert len(source.splitlines()) <= 200, f"{name}: move shared parts to recforge/models/layers/"


CHECKS = [
    check_output_shape,
    check_seed_determinism,
    check_eval_has_no_dropout_noise,
    check_gradients_reach_embeddings,
    check_config_rejects_unknown_keys,
    check_file_reads_in_one_sitting,
]


@pytest.mark.parametrize(
    "name, check", [pytest.param(n, c, id=f"{n}:{c.__name__}") for n in MODELS.names() for c in CHECKS]
)
def test_model_contract(name: str, check, tiny) -> None:
    check(name, *tiny)


@pytest.mark.parametrize("name", MODELS.names())
def test_weights_roundtrip(name: str, tiny, tmp_path: Path) -> None:
    check_weights_roundtrip(name, *tiny, tmp_path)


def test_unknown_model_name_suggests_the_close_one(tiny) -> None:
    with pytest.raises(ConfigError, match="did you mean 'deepfm'"):
        build_model(tiny[0], ModelConfig(name="deepfn"))


def test_all_issue_models_are_registered() -> None:
    assert {"lr", "fm", "widedeep", "deepfm", "dcn_v2", "multitower"} <= set(MODELS.names())
