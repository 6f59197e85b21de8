"""Typed request bodies of every inference route, with the caps of `serving.yaml`'s `limits:` baked in.

Validation happens here, at the edge: an integer beyond int64, an over-long list or string, a value
of the wrong JSON type is a 422 naming the field before any model code runs. The classes are built
per app from its limits (so the OpenAPI document states the real caps, and a fuzzer generating from
it reaches the scoring code with bodies that are mostly valid).
"""

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from recforge.config.serving import HttpConfig, LimitsConfig
from recforge.serving.http.v2 import DTYPES

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Strict64 = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
DATATYPES = (*DTYPES, "BYTES")


def _scalar(v: Any, max_string: int) -> Any:
    """Python ints are unbounded; every tensor and Arrow column here is at most int64, so range is checked."""
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


@dataclass(frozen=True)
class Values:
    """`Annotated` marker: a scalar, null, or a list of at most `cap` of them, checked in one plain function
    (so an error names the field once, without pydantic's union-member noise)."""

    cap: int
    max_string: int

    def check(self, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, list):
            if len(v) > self.cap:
                raise ValueError(f"a list of {len(v)} values; at most {self.cap}")
            return [None if x is None else _scalar(x, self.max_string) for x in v]
        return _scalar(v, self.max_string)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        scalars = _scalars(self.max_string)
        listed = {"type": "array", "items": {"anyOf": [*scalars, {"type": "null"}]}, "maxItems": self.cap}
        return {"anyOf": [*scalars, listed, {"type": "null"}]}


def _scalars(max_string: int) -> list[dict[str, Any]]:
    integer = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    return [integer, {"type": "number"}, {"type": "string", "maxLength": max_string}, {"type": "boolean"}]


def _name(limits: LimitsConfig) -> Any:
    return Field(min_length=1, max_length=limits.max_string)


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
    return RequestModels(_recommend_body(limits, http), _infer_request(limits), _predict_body(limits, http))


def _recommend_body(limits: LimitsConfig, http: HttpConfig) -> type[BaseModel]:
    # Ids come in long lists (candidates): a strict union runs in pydantic-core, ~3x faster than a Python check.
    Id = Annotated[
        Strict64 | Annotated[str, Strict(), Field(max_length=limits.max_string)], Field(union_mode="left_to_right")
    ]
    Ids = Annotated[list[Id], Field(max_length=limits.max_items)]
    Value = Annotated[Any, Values(limits.max_values, limits.max_string)]
    Fields = Annotated[dict[Annotated[str, _name(limits)], Value], Field(max_length=limits.max_fields)]

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
        explain: bool = Field(
            False, description="Add each recall channel's candidates (ids, scores) and the merged list (`explain`)."
        )

    return RecommendBody


def _infer_request(limits: LimitsConfig) -> type[BaseModel]:
    Name = Annotated[str, _name(limits)]
    scalars = _scalars(limits.max_string)
    listed = {"type": "array", "items": {"anyOf": scalars}}
    # Tensor data is checked per datatype by the codec: numpy's conversion refuses overflow and wrong kinds.
    Tensor = Annotated[list[Any], WithJsonSchema({"type": "array", "items": {"anyOf": [*scalars, listed]}})]

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

        id: Annotated[str, Field(max_length=limits.max_string)] | None = None
        parameters: RequestParameters | None = None
        inputs: Annotated[list[InferInput], Field(min_length=1, max_length=limits.max_fields)]
        outputs: Annotated[list[InferOutput], Field(max_length=limits.max_fields)] | None = None

    return InferRequest


def _predict_body(limits: LimitsConfig, http: HttpConfig) -> type[BaseModel]:
    Name = Annotated[str, _name(limits)]
    Value = Annotated[Any, Values(limits.max_values, limits.max_string)]
    Row = Annotated[dict[Name, Value], Field(min_length=1, max_length=limits.max_fields)]
    Column = Annotated[Any, Values(http.max_candidates, limits.max_string)]
    Columns = Annotated[dict[Name, Column], Field(min_length=1, max_length=limits.max_fields)]

    class PredictBody(Closed):
        """TF-Serving REST predict: row form `instances` or columnar `inputs` (exactly one of them)."""

        signature_name: Annotated[str, Field(max_length=limits.max_string)] | None = None
        instances: Annotated[list[Row], Field(min_length=1, max_length=http.max_candidates)] | None = None
        inputs: Columns | None = None

        @model_validator(mode="after")
        def _one_form(self) -> "PredictBody":
            if (self.instances is None) == (self.inputs is None):
                raise ValueError("give exactly one of `instances` (rows) or `inputs` (columns)")
            return self

    return PredictBody
