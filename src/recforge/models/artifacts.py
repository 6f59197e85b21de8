"""Models whose state is more than tensors: text files a bundle stores beside the safetensors weights."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class HasArtifacts(Protocol):
    """A model that exports text artifacts (file name -> text) and is rebuilt from them before its weights load.

    Artifacts are plain text (a LightGBM model, PMML, a CSV report): reading them never executes code.
    """

    def artifacts(self) -> dict[str, str]: ...

    def load_artifacts(self, texts: dict[str, str]) -> None: ...
