"""Matching (recall) models: two towers (DSSM, YouTube-DNN), a GraphSAGE-style bipartite graph encoder, MF."""

from recforge.models.recall.dssm import DSSM, DSSMConfig
from recforge.models.recall.graphsage import GraphConfig, GraphSAGE, bipartite_adjacency
from recforge.models.recall.mf import MatrixFactorization
from recforge.models.recall.mind import MIND, MINDConfig
from recforge.models.recall.towers import History, Tower, TwoTower, TwoTowerConfig, cap_rows, history_rows
from recforge.models.recall.youtube_dnn import YouTubeDNN, YouTubeDNNConfig

__all__ = [
    "DSSM",
    "MIND",
    "DSSMConfig",
    "GraphConfig",
    "GraphSAGE",
    "History",
    "MINDConfig",
    "MatrixFactorization",
    "Tower",
    "TwoTower",
    "TwoTowerConfig",
    "YouTubeDNN",
    "YouTubeDNNConfig",
    "bipartite_adjacency",
    "cap_rows",
    "history_rows",
]
