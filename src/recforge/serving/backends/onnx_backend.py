"""ONNX backend: embedding lookups in torch, everything after them in onnxruntime.

Why split there: every rank model reads its inputs through one EmbeddingCollection
(`self.embeddings(batch)`), and what follows is a small dense network that onnxruntime runs with less
per-op overhead than eager torch. The embedding tables stay in recforge's storage (where dynamic,
tiered and delta-updated tables live) instead of being copied into the graph, so the graph is small
and exporting it takes about a second. Its inputs are the collection's outputs: `part{i}` [B, F_i, D_i]
per field group and, for models with a linear term, `linear` [B]; its output is the probability [B]
(a multi-task model: its task scores [B, T]).

The graph is written to `<bundle>/onnx/model.onnx` with a `meta.json` naming the bundle version and
config hash it came from; a later load of the same bundle reuses it. A read-only bundle exports to a
temporary directory instead. Every load checks the graph against the torch model on random inputs.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recforge.batch import Bag, Batch
from recforge.bundle import Bundle
from recforge.embedding import EmbeddingCollection
from recforge.embedding.collection import Embedded
from recforge.errors import BundleError
from recforge.models.outputs import scores
from recforge.schema import InputSchema
from recforge.serving.backends.base import BACKENDS

log = logging.getLogger(__name__)
FORMAT = "recforge.onnx/1"
OPSET = 17
CHECK_ROWS = 64
CHECK_TOLERANCE = 1e-5


class FedEmbeddings(nn.Module):
    """Stands in for the model's EmbeddingCollection while exporting: returns the Embedded it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.value: Embedded | None = None

    def forward(self, batch: Any) -> Embedded | None:
        return self.value


class DensePart(nn.Module):
    """(part0, ..., [linear]) -> probability: the model with its embedding lookups cut off."""

    def __init__(self, model: nn.Module, fed: FedEmbeddings, template: Embedded, losses: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.losses = losses
        self.fed = fed
        self.n_parts = len(template.parts)
        self.has_linear = template.linear is not None
        self.fields = template.fields
        self.dims = template.dims

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        parts = list(inputs[: self.n_parts])
        linear = inputs[self.n_parts] if self.has_linear else None
        self.fed.value = Embedded(parts, linear, self.fields, self.dims)
        return scores(self.model(None).float(), self.losses)


def embedding_attribute(model: nn.Module) -> str:
    """Name of the model's one top-level EmbeddingCollection (where the split happens)."""
    names = [name for name, child in model.named_children() if isinstance(child, EmbeddingCollection)]
    if len(names) != 1:
        raise BundleError(
            f"onnx backend: model {type(model).__name__} has {len(names)} top-level embedding collections; "
            "the backend splits models that read their inputs through exactly one. fix: use backend 'torch'"
        )
    return names[0]


def random_batch(schema: InputSchema, rows: int, seed: int = 0) -> Batch:
    """A batch of valid random ids, bags and dense values: example input for export and the load check."""
    gen = torch.Generator().manual_seed(seed)

    def ids(table: str | None, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randint(0, schema.table(table or "").num_embeddings, shape, generator=gen)

    columns = [ids(f.table, (rows,)) for f in schema.id_fields]
    return Batch(
        ids=torch.stack(columns, dim=1) if columns else torch.zeros((rows, 0), dtype=torch.int64),
        bags={f.name: Bag(ids(f.table, (rows, f.max_len))) for f in schema.bag_fields},
        dense=torch.randn((rows, len(schema.dense_fields)), generator=gen),
    )


def input_names(template: Embedded) -> list[str]:
    return [f"part{i}" for i in range(len(template.parts))] + (["linear"] if template.linear is not None else [])


def graph_inputs(embedded: Embedded) -> list[torch.Tensor]:
    return [*embedded.parts, *([embedded.linear] if embedded.linear is not None else [])]


def export_dense_part(
    model: nn.Module, attribute: str, example: Embedded, path: Path, losses: tuple[str, ...] = ("bce",)
) -> None:
    """Write the dense part of `model` as ONNX; the model is restored afterwards, even on failure."""
    collection = getattr(model, attribute)
    fed = FedEmbeddings()
    head = DensePart(
        model, fed, example, losses
    ).eval()  # the exporter restores this mode on every submodule afterwards
    names = input_names(example)
    setattr(model, attribute, fed)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                head,
                tuple(t.detach() for t in graph_inputs(example)),
                str(path),
                dynamo=False,  # the TorchScript exporter needs no onnxscript and handles these graphs
                input_names=names,
                output_names=["probability"],
                dynamic_axes={name: {0: "rows"} for name in [*names, "probability"]},
                opset_version=OPSET,
            )
    except Exception as exc:
        raise BundleError(
            f"onnx backend: exporting {type(model).__name__} failed ({type(exc).__name__}: {exc}). "
            "fix: use backend 'torch'"
        ) from exc
    finally:
        setattr(model, attribute, collection)
        model.eval()


def graph_meta(bundle: Bundle, attribute: str, names: list[str]) -> dict[str, Any]:
    """What a cached graph must match to be reused: the bundle version, its config and the split."""
    return {
        "format": FORMAT,
        "version": bundle.version,
        "config_hash": bundle.manifest.get("config_hash"),
        "attribute": attribute,
        "inputs": names,
        "opset": OPSET,
    }


def cached_graph(bundle: Bundle, meta: dict[str, Any]) -> Path | None:
    folder = bundle.path / "onnx"
    try:
        found = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return folder / "model.onnx" if found == meta and (folder / "model.onnx").is_file() else None


def write_graph(bundle: Bundle, attribute: str, example: Embedded, meta: dict[str, Any]) -> Path:
    """Export into `<bundle>/onnx/` (atomically, so concurrent loaders never read half a file), else a temp dir."""
    try:
        folder = bundle.path / "onnx"
        folder.mkdir(exist_ok=True)
        tmp = folder / f".model-{uuid.uuid4().hex[:8]}.onnx"
        export_dense_part(bundle.model, attribute, example, tmp, bundle.losses)
        os.replace(tmp, folder / "model.onnx")
        (folder / f".meta-{tmp.stem}").write_text(json.dumps(meta))
        os.replace(folder / f".meta-{tmp.stem}", folder / "meta.json")
        return folder / "model.onnx"
    except OSError as exc:
        folder = Path(tempfile.mkdtemp(prefix="recforge-onnx-"))
        log.warning("%s is not writable (%s); exporting the ONNX graph to %s", bundle.path, exc, folder)
        export_dense_part(bundle.model, attribute, example, folder / "model.onnx", bundle.losses)
        return folder / "model.onnx"


@BACKENDS.register("onnx")
class OnnxBackend:
    """Torch gathers the field embeddings, onnxruntime runs the rest (intra-op threads = `threads`)."""

    name = "onnx"

    def __init__(self, bundle: Bundle, threads: int | None = None) -> None:
        import onnxruntime as ort  # imported here: torch-only services do not pay for it

        if threads:
            torch.set_num_threads(threads)  # the embedding lookups run in torch
        model = bundle.model.eval()
        if not getattr(model, "onnx_dense_split", True):
            raise BundleError(
                f"onnx backend: {type(model).__name__} reads its behavior sequences inside the network, so it cannot "
                "be split into torch embeddings + an ONNX dense part. fix: use backend 'torch'"
            )
        self.attribute = embedding_attribute(model)
        self.collection: EmbeddingCollection = getattr(model, self.attribute)
        check = random_batch(bundle.features.schema(), CHECK_ROWS)
        with torch.no_grad():
            example = self.collection(check)
        self.names = input_names(example)
        meta = graph_meta(bundle, self.attribute, self.names)
        self.path = cached_graph(bundle, meta) or write_graph(bundle, self.attribute, example, meta)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.losses = bundle.losses
        self._check(model, check)

    def probabilities(self, batch: Batch) -> np.ndarray:
        with torch.inference_mode():
            embedded = self.collection(batch)
        feeds = {
            name: np.ascontiguousarray(t.numpy()) for name, t in zip(self.names, graph_inputs(embedded), strict=True)
        }
        (out,) = self.session.run(None, feeds)
        return np.asarray(out, dtype=np.float64)

    def _check(self, model: nn.Module, batch: Batch) -> None:
        """Refuse a graph that disagrees with the torch model (a stale cache, or a model the split misreads)."""
        with torch.inference_mode():
            expected = scores(model(batch).float(), self.losses).numpy().astype(np.float64)
        gap = float(np.max(np.abs(self.probabilities(batch) - expected), initial=0.0))
        if not gap <= CHECK_TOLERANCE:
            raise BundleError(
                f"onnx backend: the graph at {self.path} differs from the torch model by {gap:.2e} on random "
                f"inputs (tolerance {CHECK_TOLERANCE}). fix: delete {self.path.parent} to re-export, or use 'torch'"
            )
