"""Recall: narrow the catalog to a few hundred candidates per user (CF, MF, EASE, two-tower, graph, ANN, merge)."""
