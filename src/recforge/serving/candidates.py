"""One request's candidate list: item ids, each with the recall channels that found it as a bitmask.

Hundreds of candidates go to ranking but only the k answered items reach the response, so per-candidate
Python work is left for those k: recall ids stay a NumPy array (no Python object per candidate) and the
channel names of a bitmask are spelled out only for the answer (`recall.merge.names_of`, memoized).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recforge.recall.merge import names_of

REQUEST = ("request",)  # the one "channel" of candidates sent with the request


@dataclass(frozen=True)
class CandidateList:
    """`ids`: a NumPy array of raw ids (recall) or the request's own list; `masks` int64 [n], bit c = channels[c]."""

    ids: np.ndarray | Sequence[Any]
    masks: np.ndarray
    channels: tuple[str, ...]

    @staticmethod
    def from_request(ids: Sequence[Any]) -> CandidateList:
        return CandidateList(list(ids), np.ones(len(ids), np.int64), REQUEST)

    def __len__(self) -> int:
        return len(self.masks)

    def take(self, at: np.ndarray) -> CandidateList:
        """The candidates at positions `at`, in that order."""
        ids = self.ids[at] if isinstance(self.ids, np.ndarray) else [self.ids[i] for i in at.tolist()]
        return CandidateList(ids, self.masks[at], self.channels)

    def id_list(self) -> list[Any]:
        """The ids as Python values (what the answer's JSON holds)."""
        return self.ids.tolist() if isinstance(self.ids, np.ndarray) else list(self.ids)

    def channel_names(self) -> list[list[str]]:
        return [list(names_of(self.channels, mask)) for mask in self.masks.tolist()]
