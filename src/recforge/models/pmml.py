"""PMML 4.4 for a tree forest with a logistic regression over its one-hot leaf indicators (GBDT+LR).

Each row reaches exactly one leaf per tree, so `bias + sum_l w_l * [row reaches leaf l]` equals
`bias + sum_t w[leaf_t(row)]`: the LR is written as a sum of TreeModels whose leaf scores are the LR
weights (a MiningModel, `sum` segmentation), chained into a logit RegressionModel for the probability.
Splits come from LightGBM's JSON dump: `value <= threshold` (numeric) or `code in set` (categorical)
goes left, anything else right. The inputs are the model-input matrix columns of `TreeInputs`.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from recforge.errors import BundleError
from recforge.models.trees import Forest, TreeInputs

TARGET = "label"
LOGIT = "gbdt_lr_logit"


def forest_lr_pmml(forest: Forest, inputs: TreeInputs, weights: np.ndarray, bias: float, name: str) -> str:
    """The PMML document; `weights` [n_leaves] indexed by global leaf, `bias` the LR intercept."""
    if len(weights) != forest.n_leaves:
        raise BundleError(f"{len(weights)} LR weights for a forest with {forest.n_leaves} leaves")
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">',
        f'<Header description={quoteattr(name)}><Application name="recforge" version="gbdt_lr"/></Header>',
        f'<DataDictionary numberOfFields="{len(inputs.columns) + 1}">',
    ]
    for c in inputs.columns:
        kind = 'optype="categorical" dataType="integer"' if c.categorical else 'optype="continuous" dataType="double"'
        out.append(f"<DataField name={quoteattr(c.name)} {kind}/>")
    out += [
        f'<DataField name="{TARGET}" optype="categorical" dataType="integer">',
        '<Value value="0"/><Value value="1"/></DataField></DataDictionary>',
        '<MiningModel functionName="classification">',
        _schema(inputs, target=True),
        '<Output><OutputField name="probability" optype="continuous" dataType="double" '
        'feature="probability" value="1"/></Output>',
        '<Segmentation multipleModelMethod="modelChain">',
        '<Segment id="trees"><True/><MiningModel functionName="regression">',
        _schema(inputs, target=False),
        f'<Output><OutputField name="{LOGIT}" optype="continuous" dataType="double" feature="predictedValue"/>'
        "</Output>",
        '<Segmentation multipleModelMethod="sum">',
    ]
    for t, tree in enumerate(forest.dump["tree_info"]):
        out.append(f'<Segment id="tree{t}"><True/>')
        out.append('<TreeModel functionName="regression" noTrueChildStrategy="returnLastPrediction">')
        out.append(_schema(inputs, target=False))
        _node(tree["tree_structure"], "<True/>", inputs, weights[forest.offsets[t] :], out)
        out.append("</TreeModel></Segment>")
    out += [
        "</Segmentation></MiningModel></Segment>",
        '<Segment id="logistic"><True/>',
        '<RegressionModel functionName="classification" normalizationMethod="logit">',
        f'<MiningSchema><MiningField name="{LOGIT}"/><MiningField name="{TARGET}" usageType="target"/></MiningSchema>',
        f'<RegressionTable intercept="{float(bias)!r}" targetCategory="1">'
        f'<NumericPredictor name="{LOGIT}" coefficient="1"/></RegressionTable>',
        '<RegressionTable intercept="0" targetCategory="0"/>',
        "</RegressionModel></Segment></Segmentation></MiningModel></PMML>",
    ]
    return "\n".join(out) + "\n"


def _schema(inputs: TreeInputs, *, target: bool) -> str:
    fields = "".join(f"<MiningField name={quoteattr(c.name)}/>" for c in inputs.columns)
    if target:
        fields += f'<MiningField name="{TARGET}" usageType="target"/>'
    return f"<MiningSchema>{fields}</MiningSchema>"


def _node(node: dict[str, Any], test: str, inputs: TreeInputs, weights: np.ndarray, out: list[str]) -> None:
    """One Node: a leaf scores its LR weight; a split sends `predicate` left and everything else right."""
    if "split_index" not in node:
        out.append(f'<Node score="{float(weights[node.get("leaf_index", 0)])!r}">{test}</Node>')
        return
    column = inputs.columns[int(node["split_feature"])]
    if node.get("missing_type") == "Zero":
        raise BundleError(f"tree split on {column.name!r} treats zero as missing; train with zero_as_missing=false")
    field = quoteattr(column.name)
    if node["decision_type"] == "==":
        codes = [int(v) for v in str(node["threshold"]).split("||")]
        predicate = (
            f'<SimpleSetPredicate field={field} booleanOperator="isIn">'
            f'<Array type="int" n="{len(codes)}">{" ".join(map(str, codes))}</Array></SimpleSetPredicate>'
        )
    else:
        predicate = f'<SimplePredicate field={field} operator="lessOrEqual" value="{float(node["threshold"])!r}"/>'
    out.append(f"<Node>{test}")
    _node(node["left_child"], predicate, inputs, weights, out)
    _node(node["right_child"], "<True/>", inputs, weights, out)
    out.append("</Node>")
