"""Feature importance of a trained model on eval data, by two independent methods.

- Permutation importance: shuffle one model input field across the rows of the eval batch (breaking its
  link with the label and the other fields, keeping its distribution) and measure the AUC drop; several
  shuffles give a mean and a spread. A cross field is its own input: shuffling `gender` leaves
  `gender_x_city_tier` as it was.
- Dropout feature ranking (Chang et al., 2017, "Dropout Feature Ranking for Deep Learning Models"): keep
  the model frozen and learn one dropout rate per field with a relaxed (concrete) Bernoulli mask on its
  embedding rows, under a penalty on every kept field; fields the loss does not need are dropped.

The CSV written from `importance_table` has the columns feature, importance, std, rank (1 = most
important), kind (id / bag / dense) and drop_rate (empty when dropout ranking did not run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recforge.batch import Bag, Batch
from recforge.embedding import EmbeddingCollection
from recforge.embedding.collection import FieldHook
from recforge.errors import RecforgeError
from recforge.schema import InputSchema
from recforge.train.metrics import auc

log = logging.getLogger(__name__)
COLUMNS = ("feature", "importance", "std", "rank", "kind", "drop_rate")


@dataclass(frozen=True)
class FieldImportance:
    feature: str
    kind: str  # id / bag / dense
    importance: float  # mean AUC drop over the shuffles
    std: float  # standard deviation of the drop over the shuffles
    rank: int  # 1 = largest drop
    drops: tuple[float, ...]
    drop_rate: float | None = None  # learned dropout rate (dropout ranking), None when not run


def field_order(schema: InputSchema) -> list[tuple[str, str]]:
    """(name, kind) of every model input in the order Batch and EmbeddingCollection lay them out."""
    return [(f.name, f.kind) for f in (*schema.id_fields, *schema.bag_fields, *schema.dense_fields)]


def shuffle_field(batch: Batch, schema: InputSchema, name: str, perm: torch.Tensor) -> Batch:
    """`batch` with field `name` taken from rows `perm` (every other field and the labels untouched)."""
    spec = schema.field(name)
    if spec.kind == "id":
        j = [f.name for f in schema.id_fields].index(name)
        ids = batch.ids.clone()
        ids[:, j] = batch.ids[perm, j]
        return Batch(ids, batch.bags, batch.dense, batch.labels, batch.weights, batch.extras)
    if spec.kind == "bag":
        bags: dict[str, Bag] = dict(batch.bags)
        bags[name] = batch.bags[name].index(perm)
        return Batch(batch.ids, bags, batch.dense, batch.labels, batch.weights, batch.extras)
    j = [f.name for f in schema.dense_fields].index(name)
    dense = batch.dense.clone()
    dense[:, j] = batch.dense[perm, j]
    return Batch(batch.ids, batch.bags, dense, batch.labels, batch.weights, batch.extras)


def score(model: nn.Module, batch: Batch, chunk_rows: int = 65_536) -> np.ndarray:
    """Logits for every row of `batch`, in eval mode, `chunk_rows` at a time."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, batch.size, chunk_rows):
            out.append(model(batch.index(slice(start, start + chunk_rows))).float().numpy())
    return np.concatenate(out).astype(np.float64)


def permutation_importance(
    model: nn.Module, batch: Batch, schema: InputSchema, label: str, *, repeats: int = 5, seed: int = 0
) -> tuple[float, list[FieldImportance]]:
    """(baseline AUC, one entry per field sorted by importance) from `repeats` shuffles of each field."""
    if repeats < 1:
        raise RecforgeError(f"permutation importance needs repeats >= 1, got {repeats}")
    labels = batch.labels[label].numpy()
    if labels.min() == labels.max():
        raise RecforgeError(f"the eval data has a single {label!r} class in {batch.size:,} rows; AUC is undefined")
    baseline = auc(labels, score(model, batch))
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for name, kind in field_order(schema):
        drops = tuple(
            baseline
            - auc(
                labels,
                score(model, shuffle_field(batch, schema, name, torch.randperm(batch.size, generator=generator))),
            )
            for _ in range(repeats)
        )
        rows.append((name, kind, float(np.mean(drops)), float(np.std(drops)), drops))
        log.info("importance %s: %.5f +- %.5f", name, rows[-1][2], rows[-1][3])
    rows.sort(key=lambda r: -r[2])
    return baseline, [FieldImportance(n, k, m, s, i + 1, d) for i, (n, k, m, s, d) in enumerate(rows)]


def collections_of(model: nn.Module) -> list[EmbeddingCollection]:
    found = [m for m in model.modules() if isinstance(m, EmbeddingCollection)]
    if not found:
        raise RecforgeError(
            f"{type(model).__name__} has no EmbeddingCollection: dropout ranking cannot mask its fields"
        )
    return found


def mixer(keep: torch.Tensor, perm: torch.Tensor) -> FieldHook:
    """Field hook: row b of field f becomes keep[b, f] * own + (1 - keep[b, f]) * row perm[b]'s.

    A dropped field reads another row's value (a draw from its own distribution) rather than zeros,
    which a frozen model never saw in training and would read as a signal of its own.
    """

    def mix(parts: list[torch.Tensor]) -> list[torch.Tensor]:
        out, start = [], 0
        for p in parts:
            k = keep[:, start : start + p.shape[1]].unsqueeze(-1).to(p.dtype)
            out.append(k * p + (1 - k) * p[perm])
            start += p.shape[1]
        return out

    return mix


@dataclass(frozen=True)
class DropoutOptions:
    steps: int = 300
    batch_size: int = 2048
    lr: float = 0.05
    penalty: float = 1e-3  # loss added per fully kept field; drops fields worth less log loss than this
    temperature: float = 0.1  # of the relaxed Bernoulli masks
    seed: int = 0


def dropout_rates(
    model: nn.Module, batch: Batch, schema: InputSchema, label: str, options: DropoutOptions = DropoutOptions()
) -> dict[str, float]:
    """Learned dropout rate per field (high = the frozen model does not need it); the model is left unchanged."""
    collections = collections_of(model)
    names = [name for name, _ in field_order(schema)]
    generator = torch.Generator().manual_seed(options.seed)
    keep_logit = torch.full((len(names),), 3.0, requires_grad=True)  # start with every field kept (p ~ 0.95)
    optimizer = torch.optim.Adam([keep_logit], lr=options.lr)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in frozen:
        p.requires_grad_(False)
    model.eval()
    try:
        for _ in range(options.steps):
            rows = torch.randint(0, batch.size, (min(options.batch_size, batch.size),), generator=generator)
            part = batch.index(rows)
            u = torch.rand((part.size, len(names)), generator=generator).clamp(1e-6, 1 - 1e-6)
            mask = torch.sigmoid((keep_logit + torch.log(u) - torch.log1p(-u)) / options.temperature)
            hook = mixer(mask, torch.randperm(part.size, generator=generator))
            for c in collections:
                c.set_field_hook(hook)
            logits = model(part).float()
            loss = nn.functional.binary_cross_entropy_with_logits(logits, part.labels[label])
            loss = loss + options.penalty * torch.sigmoid(keep_logit).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        for c in collections:
            c.set_field_hook(None)
        for p, grad in frozen:
            p.requires_grad_(grad)
    drop = 1.0 - torch.sigmoid(keep_logit.detach())
    return {name: float(d) for name, d in zip(names, drop, strict=True)}


def with_drop_rates(rows: list[FieldImportance], rates: dict[str, float]) -> list[FieldImportance]:
    return [
        FieldImportance(r.feature, r.kind, r.importance, r.std, r.rank, r.drops, rates.get(r.feature)) for r in rows
    ]
