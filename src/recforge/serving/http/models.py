"""Typed request bodies of every inference route, with the caps of `serving.yaml`'s `limits:` baked in.

Validation happens here, at the edge: an integer beyond int64, an over-long list or string, a value
of the wrong JSON type is a 422 naming the field before any model code runs. The classes are built
per app from its limits (so the OpenAPI document states the real caps, and a fuzzer generating from
it reaches the scoring code with bodies that are mostly valid).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, Strict, WithJsonSchema, model_validator

from recforge.config.serving import HttpConfig, LimitsConfig
from recforge.serving.http.v2 import DTYPES

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Strict64 = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
DATATYPES = (*DTYPES, "BYTES")


def _checks(max_string: int) -> Callable[[int], Callable[[Any], Any]]:
    """Plain validators for scalar values and optional lists of them (one error per field, no union noise).

    Python ints are unbounded; every tensor and Arrow column here is at most int64, so range is checked.
    """

    def scalar(v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            if not INT64_MIN <= v <= INT64_MAX:
                raise ValueError(f"integer {v} is outside int64 [{INT64_MIN}, {INT64_MAX}]")
            return v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"{v} is not a finite number")
            return v
        if isinstance(v, str):
            if len(v) > max_string:
                raise ValueError(f"a string of {len(v)} characters; at most {max_string} (limits.max_string)")
            return v
        raise ValueError(f"expected a number, a string or a boolean, got {type(v).__name__}")

    def values(cap: int) -> Callable[[Any], Any]:
        """A scalar, null, or a list of at most `cap` of them."""

        def value(v: Any) -> Any:
            if v is None:
                return v
            if isinstance(v, list):
                if len(v) > cap:
                    raise ValueError(f"a list of {len(v)} values; at most {cap}")
                return [None if x is None else scalar(x) for x in v]
            return scalar(v)

        return value

    return values


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """KServe `parameters` objects: free-form keys, scalar values."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class RequestModels:
    """The body classes of one app, all sharing its limits."""

    recommend: type[BaseModel]
    v2_infer: type[BaseModel]
    v1_predict: type[BaseModel]


def request_models(limits: LimitsConfig, http: HttpConfig) -> RequestModels:
    """Build the body classes for these limits (named the same for every app: they are one API)."""
    text = Field(max_length=limits.max_string)
    Name = Annotated[str, Field(min_length=1, max_length=limits.max_string)]
    integer = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    string = {"type": "string", "maxLength": limits.max_string}
    scalars: list[dict[str, Any]] = [integer, {"type": "number"}, string, {"type": "boolean"}]
    values = _checks(limits.max_string)
    # Ids come in long lists (candidates): a strict union runs in pydantic-core, ~3x faster than a Python check.
    Id = Annotated[Strict64 | Annotated[str, Strict(), text], Field(union_mode="left_to_right")]

    listed = {"type": "array", "items": {"anyOf": scalars}}
    # v2 data is checked per datatype by the codec: numpy's conversion refuses overflow and wrong kinds.
    Tensor = Annotated[list[Any], WithJsonSchema({"type": "array", "items": {"anyOf": [*scalars, listed]}})]

    def listing(cap: int) -> WithJsonSchema:
        listed = {"type": "array", "items": {"anyOf": [*scalars, {"type": "null"}]}, "maxItems": cap}
        return WithJsonSchema({"anyOf": [*scalars, listed, {"type": "null"}]})

    Value = Annotated[Any, PlainValidator(values(limits.max_values)), listing(limits.max_values)]
    Fields = Annotated[dict[Name, Value], Field(max_length=limits.max_fields)]
    Ids = Annotated[list[Id], Field(max_length=limits.max_items)]

    class RecommendBody(Closed):
        """POST /recommend. `candidates` skips recall and ranks exactly these items."""

        user_id: Id
        k: Annotated[int, Field(ge=1, le=http.max_k)] | None = None
        context: Fields = Field(default_factory=dict, description="Request-side feature values by column.")
        recent_items: Ids = Field(default_factory=list, description="The user's latest items, newest last.")
        exclude: Ids = Field(default_factory=list, description="Items never to return.")
        candidates: Annotated[list[Id], Field(max_length=http.max_candidates)] | None = None
        filters: Fields = Field(default_factory=dict, description="Item column -> allowed value or values.")
        timings: bool = Field(False, description="Add per-stage milliseconds to the answer.")

    class InputParameters(Open):
        binary_data_size: Annotated[int, Field(ge=0, le=limits.max_body_bytes)] | None = None

    class InferInput(Closed):
        name: Name
        shape: Annotated[list[Annotated[int, Field(ge=0, le=INT64_MAX)]], Field(min_length=1, max_length=2)]
        datatype: Literal[DATATYPES]  # type: ignore[valid-type]
        parameters: InputParameters | None = None
        data: Tensor | None = None

    class OutputParameters(Open):
        binary_data: bool | None = None

    class InferOutput(Closed):
        name: Name
        parameters: OutputParameters | None = None

    class RequestParameters(Open):
        binary_data_output: bool | None = None

    class InferRequest(Closed):
        """KServe v2 / Triton infer request (the JSON header when the binary extension is used)."""

        id: Annotated[str, text] | None = None
        parameters: RequestParameters | None = None
        inputs: Annotated[list[InferInput], Field(min_length=1, max_length=limits.max_fields)]
        outputs: Annotated[list[InferOutput], Field(max_length=limits.max_fields)] | None = None

    Row = Annotated[dict[Name, Value], Field(min_length=1, max_length=limits.max_fields)]
    Column = Annotated[Any, PlainValidator(values(http.max_candidates)), listing(http.max_candidates)]

    class PredictBody(Closed):
        """TF-Serving REST predict: row form `instances` or columnar `inputs` (exactly one of them)."""

        signature_name: Annotated[str, text] | None = None
        instances: Annotated[list[Row], Field(min_length=1, max_length=http.max_candidates)] | None = None
        inputs: (
            Annotated[
                dict[Name, Column],
                Field(min_length=1, max_length=limits.max_fields),
            ]
            | None
        ) = None

        @model_validator(mode="after")
        def _one_form(self) -> "PredictBody":
            if (self.instances is None) == (self.inputs is None):
                raise ValueError("give exactly one of `instances` (rows) or `inputs` (columns)")
            return self

    return RequestModels(RecommendBody, InferRequest, PredictBody)
