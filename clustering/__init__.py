"""Clustering runs: embeddings in, features prepared, a method fitted, labels
written, a run recorded."""

PLUGIN = "@clusterlab/clustering"
VERSION = "0.1.0"
RUN_KIND = "clustering"
