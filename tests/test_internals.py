"""The plugin reads and writes through FiftyOne's internals where they are
(fast) and through its public API where they are not (``values()``,
``set_values()``): both paths give the same run, value for value."""

import numpy as np
import pytest

from conftest import blob_dataset_of, make_dataset, operator, plugin_module


def runs_with(monkeypatch, dataset, public, key):
    if public:
        monkeypatch.setenv("CLUSTERLAB_PUBLIC_API", "1")
    else:
        monkeypatch.delenv("CLUSTERLAB_PUBLIC_API", raising=False)
    compute = operator("compute_clusters")
    compute(dataset.skip(50), run_key=key, embeddings="embedding", method="kmeans",
            kmeans__n_clusters=4, reduce="none", random_state=0,
            distance_field=f"{key}_dist", progress=False)
    dataset.add_samples([dataset.first().copy() for _ in range(3)], progress=False)
    operator("assign_to_clusters")(dataset, key, progress=False)
    operator("rename_clustering_run")(dataset, key, f"{key}_b")
    dataset.delete_samples(dataset.skip(len(dataset) - 3))
    return f"{key}_b"


@pytest.mark.smoke
def test_internals_and_public_api_give_the_same_run(monkeypatch):
    dataset = blob_dataset_of(3000, 12, centers=4, seed=21)
    fast = runs_with(monkeypatch, dataset, False, "fast")
    public = runs_with(monkeypatch, dataset, True, "public")
    assert dataset.values(f"{fast}_cluster") == dataset.values(f"{public}_cluster")
    np.testing.assert_allclose(
        np.array(dataset.values(f"{fast}_dist"), dtype=float),
        np.array(dataset.values(f"{public}_dist"), dtype=float), atol=1e-6)
    a, b = (dataset.load_run_results(k).clusters for k in (fast, public))
    assert [(c["id"], c["size"], c["representatives"]) for c in a] == [
        (c["id"], c["size"], c["representatives"]) for c in b]
    assert None not in dataset.count_values(f"{fast}_cluster")  # skipped ones assigned

    embeddings = plugin_module("clustering.embeddings")
    read = [embeddings.read_embeddings(dataset, "embedding") for _ in range(2)]
    monkeypatch.setenv("CLUSTERLAB_PUBLIC_API", "1")
    public_read = embeddings.read_embeddings(dataset, "embedding")
    assert public_read.ids == read[0].ids
    np.testing.assert_array_equal(public_read.X, read[0].X)
    dataset.delete()


def test_vectors_ending_in_zero_bytes_are_read_exactly():
    """The reader gathers raw values in a fixed-width block, which pads with
    zero bytes: vectors that end in zeros (or are all zeros), in float32 and
    float64, in batches of several sizes, must come back bit for bit."""
    embeddings = plugin_module("clustering.embeddings")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4500, 16)).astype(np.float32)
    X[::3, -5:] = 0.0
    X[::7] = 0.0
    X[1::11, -1] = -0.0
    for dtype in (np.float32, np.float64):
        dataset = make_dataset(X.astype(dtype))
        read = embeddings.read_embeddings(dataset, "embedding")
        stored = dict(zip(*dataset.values(["_id", "embedding"])))
        expected = np.stack([stored[i] for i in read.ids]).astype(np.float32)
        assert len(read.ids) == len(X)
        np.testing.assert_array_equal(read.X.view(np.uint32), expected.view(np.uint32))
        dataset.delete()
