"""Object patches: runs over the detections of a label field.

The data are real offline images: each sample is a strip of three tiles cut
from scikit-image's brick, grass and gravel textures, each tile a detection
whose box covers it, whose label is its texture and whose embedding is the
histogram of its local binary patterns (a texture descriptor). Each texture is tinted its own colour, so the
simulated vision model (which names the colour it sees) names a cluster
right only when it is sent the objects' crops, not the whole strips.
"""

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo
from conftest import form, operator, plugin_module, snapshot
from llm_server import COLOURS, LLMServer, asked

params = plugin_module("clustering.params")

TEXTURES = {"brick": "red", "grass": "green", "gravel": "blue"}
TILE = 64
KEY, MODEL = "sk-test-patches-0123456789", "vision-test"


def _tiles(name, count, rng):
    """``count`` grey TILE x TILE tiles cut at random from texture ``name``."""
    import skimage.data

    image = getattr(skimage.data, name)().astype(np.float32) / 255
    rows = rng.integers(0, image.shape[0] - TILE, count)
    cols = rng.integers(0, image.shape[1] - TILE, count)
    return [image[r:r + TILE, c:c + TILE] for r, c in zip(rows, cols)]


def _lbp(tile):
    """The tile's texture: histograms of its local binary patterns at two radii."""
    from skimage.feature import local_binary_pattern

    codes = [local_binary_pattern((tile * 255).astype(np.uint8), p, r, "uniform")
             for p, r in ((8, 1), (16, 2))]
    return np.concatenate([np.bincount(c.astype(int).ravel(), minlength=p + 2) / c.size
                           for c, p in zip(codes, (8, 16))]).astype(np.float32)


def strips(tmp_path, num_samples=30, duplicates=0, seed=0, kind="detections"):
    """A dataset of ``num_samples`` strips, ``kind`` (detections, or
    polylines around each tile) in ``ground_truth``; the last ``duplicates``
    samples repeat an earlier sample's first tile in place of their own
    (planted duplicates). Returns the dataset and ``{duplicate object id:
    object it copies}``."""
    rng = np.random.default_rng(seed)
    tiles = {name: _tiles(name, num_samples, rng) for name in TEXTURES}
    dataset = fo.Dataset()
    samples, copies = [], {}
    for i in range(num_samples):
        order = rng.permutation(list(TEXTURES))
        chosen = [tiles[name][i] for name in order]
        if i >= num_samples - duplicates:
            chosen[0] = tiles[order[0]][i - num_samples + duplicates]
            copies[i] = (i - num_samples + duplicates, order[0])
        strip = np.concatenate(
            [np.asarray(COLOURS[TEXTURES[name]]) * (0.6 + 0.4 * t[..., None])
             for name, t in zip(order, chosen)], axis=1)
        path = str(tmp_path / f"strip{i}.png")
        Image.fromarray(np.clip(strip, 0, 255).astype(np.uint8)).save(path)
        samples.append(fo.Sample(filepath=path, ground_truth=_labels(kind, [
            (str(name), j, _lbp(t)) for j, (name, t) in enumerate(zip(order, chosen))])))
    dataset.add_samples(samples, progress=False)
    return dataset, _copied_ids(dataset, copies)


def _labels(kind, tiles):
    """The ``kind`` label of a strip's ``(label, position, embedding)`` tiles."""
    if kind == "polylines":
        return fo.Polylines(polylines=[
            fo.Polyline(label=label, closed=True, filled=True, embedding=embedding,
                        points=[[(j / 3, 0.0), ((j + 1) / 3, 0.0), ((j + 1) / 3, 1.0),
                                 (j / 3, 1.0)]])
            for label, j, embedding in tiles])
    return fo.Detections(detections=[
        fo.Detection(label=label, bounding_box=[j / 3, 0.0, 1 / 3, 1.0], embedding=embedding)
        for label, j, embedding in tiles])


def _copied_ids(dataset, copies):
    """``{duplicate object id: original object id}`` of the planted copies."""
    found = {}
    all_dets = [s.ground_truth[_kind(dataset)] for s in dataset.iter_samples()]
    for i, (original, name) in copies.items():
        by_label = {d.label: d.id for d in all_dets[original]}
        found[next(d.id for d in all_dets[i] if d.label == name)] = by_label[name]
    return found


def _kind(dataset):
    """The list of objects ``ground_truth`` holds: detections or polylines."""
    return ("polylines" if dataset.get_field("ground_truth").document_type is fo.Polylines
            else "detections")


def objects(dataset, *fields):
    """Each object's values of ``fields`` (attributes), one list per field."""
    columns = dataset.values([f"ground_truth.{_kind(dataset)}.{f}" for f in fields])
    return [[v for per_sample in column for v in per_sample] for column in columns]


def cluster(dataset, method="kmeans", **kwargs):
    settings = dict(run_key="tex", embeddings="embedding", patches_field="ground_truth",
                    method=method, random_state=0, progress=False)
    if method == "kmeans":
        settings["kmeans__n_clusters"] = 3
    return operator("compute_clusters")(dataset, **dict(settings, **kwargs))


@pytest.fixture
def tiles(tmp_path):
    dataset, copies = strips(tmp_path)
    yield dataset
    dataset.delete()


@pytest.mark.smoke
def test_each_object_gets_its_cluster_and_group_and_the_run_reads_back(tiles):
    from sklearn.metrics import adjusted_rand_score

    before = tiles.values("last_modified_at")
    summary = cluster(tiles, ground_truth="label", distance_field="tex_distance")
    assert summary["num_samples"] == 90 and sum(summary["sizes"]) == 90
    ids, labels, clusters, groups_, distances = objects(
        tiles, "id", "label", "tex_cluster", "tex_group", "tex_distance")
    assert adjusted_rand_score(labels, clusters) > 0.95
    assert summary["metrics"]["ground_truth"]["ari"] == pytest.approx(
        adjusted_rand_score(labels, clusters), abs=1e-3)
    assert all(isinstance(d, float) and d >= 0 for d in distances)
    group_of = {c: g["id"] for g in summary["groups"] for c in g["clusters"]}
    assert groups_ == [group_of[c] for c in clusters]
    # only the objects changed: no sample field, and each strip stamped as written
    assert not tiles.has_sample_field("tex_cluster")
    assert all(a > b for a, b in zip(tiles.values("last_modified_at"), before))

    info = tiles.get_run_info("tex")
    assert info.config.patches_field == "ground_truth"
    assert info.config.cluster_field == "ground_truth.detections.tex_cluster"
    results = tiles.load_run_results("tex")
    representatives = {r for c in results.clusters for r in c["representatives"]}
    assert representatives and representatives <= set(ids)

    shown = operator("get_clustering_run_info")(tiles, "tex")
    assert [c["size"] for c in shown["clusters"]] == summary["sizes"]
    assert shown["config"]["patches_field"] == "ground_truth"

    # the map: one point per object, in the run's order, for the Embeddings panel
    brain = tiles.load_brain_results("tex_map")
    assert tiles.get_brain_info("tex_map").config.patches_field == "ground_truth"
    assert list(brain.current_label_ids) == ids
    assert brain.points.shape == (90, 2)


def test_open_cluster_is_a_patches_view_of_its_objects_most_typical_first(tiles):
    cluster(tiles, distance_field="tex_distance")
    view = operator("open_cluster")(tiles, "tex", "1")
    assert view._is_patches
    assert set(view.values("ground_truth.tex_cluster")) == {"1"}
    assert len(view) == tiles.count_values("ground_truth.detections.tex_cluster")["1"]
    distances = view.values("ground_truth.tex_distance")
    assert distances == sorted(distances)
    first = tiles.load_run_results("tex").groups[0]
    group = operator("open_cluster")(tiles, "tex", "g0")
    assert group._is_patches and len(group) == first["size"]
    assert set(group.values("ground_truth.tex_group")) == {"0"}


def test_bad_patch_inputs_name_the_parameter_and_change_nothing(tiles):
    before = snapshot(tiles)
    with pytest.raises(params.ParameterError, match=r"'Patches field' \(patches_field\)"):
        cluster(tiles, patches_field="filepath")
    with pytest.raises(params.ParameterError, match=r"'Embeddings field' \(embeddings\).*"
                                                    r"no object of 'ground_truth'"):
        cluster(tiles, embeddings="vector")
    with pytest.raises(params.ParameterError, match=r"'Ground truth field'.*no object"):
        cluster(tiles, ground_truth="colour")
    assert snapshot(tiles) == before
    tiles.add_sample_field("ground_truth.detections.taken", fo.StringField)
    before = snapshot(tiles)
    with pytest.raises(params.ParameterError, match=r"'Cluster field'.*existing field"):
        cluster(tiles, cluster_field="taken")
    assert snapshot(tiles) == before
    assert objects(tiles, "tex_cluster")[0] == [None] * 90


def test_rename_overwrite_and_delete_take_the_objects_fields_along(tiles):
    cluster(tiles)
    operator("rename_clustering_run")(tiles, "tex", "tex2")
    assert set(objects(tiles, "tex2_cluster")[0]) == {"0", "1", "2"}
    assert not tiles.has_sample_field("ground_truth.detections.tex_cluster")
    assert "tex2_map" in tiles.list_brain_runs()
    cluster(tiles, run_key="tex2", overwrite=True, kmeans__n_clusters=2)
    assert set(objects(tiles, "tex2_cluster")[0]) == {"0", "1"}
    operator("delete_clustering_run")(tiles, "tex2")
    tiles.reload()
    assert not tiles.has_sample_field("ground_truth.detections.tex2_cluster")
    assert not tiles.has_sample_field("ground_truth.detections.tex2_group")
    assert tiles.list_runs() == [] and tiles.list_brain_runs() == []
    assert tiles._sample_collection.count_documents(
        {"ground_truth.detections.tex2_cluster": {"$exists": True}}) == 0


def test_the_public_api_path_writes_the_same_values(tiles, monkeypatch):
    cluster(tiles, distance_field="tex_distance")
    fast = objects(tiles, "tex_cluster", "tex_group", "tex_distance")
    monkeypatch.setenv("CLUSTERLAB_PUBLIC_API", "1")
    cluster(tiles, distance_field="tex_distance", overwrite=True)
    assert objects(tiles, "tex_cluster", "tex_group", "tex_distance") == fast


@pytest.mark.parametrize("kind", ["detections", "polylines"])
def test_labeling_sends_each_objects_crop(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    tiles, _ = strips(tmp_path, kind=kind)
    cluster(tiles, n_groups=2)
    with LLMServer(KEY, MODEL, max_side=TILE) as server:
        summary = operator("label_clusters_with_llm")(
            tiles, run_key="tex", model=MODEL, base_url=server.url, max_image_size=TILE,
            num_images=4, timeout=5, delegate=False, progress=False)
    assert not server.problems
    assert asked(server.requests) == (3, 1)
    # every image sent is one tile (a square crop), not its strip (3:1)
    assert {tuple(image[1:]) for r in server.requests for image in r.images} == {(TILE, TILE)}
    labels, names = objects(tiles, "label", "tex_cluster_label")
    named = [f"{TEXTURES[label].capitalize()} things" for label in labels]
    assert set(names) == set(named)  # three colours: each cluster saw its own tiles
    assert sum(a == b for a, b in zip(names, named)) >= 0.95 * len(names)
    assert summary["label_field"] == f"ground_truth.{kind}.tex_cluster_label"
    tiles.delete()


def test_actions_on_patch_runs(tmp_path):
    dataset, copies = strips(tmp_path, num_samples=36, duplicates=6, seed=1)
    cluster(dataset)
    clusters = dict(zip(*objects(dataset, "id", "tex_cluster")))

    tagged = operator("tag_clusters")(dataset, "tex", clusters=["0"], tag="look")
    assert tagged["num_changed"] == list(clusters.values()).count("0")
    tags = dict(zip(*objects(dataset, "id", "tags")))
    assert {i for i, t in tags.items() if "look" in t} == {
        i for i, c in clusters.items() if c == "0"}
    assert dataset.count_sample_tags() == {}  # the objects are tagged, not the samples

    operator("sample_clusters")(dataset, "tex", num_samples=4, name="four")
    saved = dataset.load_saved_view("four")
    assert saved._is_patches and len(saved) == 12
    assert sorted(saved.count_values("ground_truth.tex_cluster").values()) == [4, 4, 4]

    found = operator("find_cluster_duplicates")(dataset, "tex", threshold=0.9999)
    ids, dup_of, is_dup = objects(dataset, "id", "tex_dup_of", "tex_duplicate")
    marked = {i: d for i, d, flag in zip(ids, dup_of, is_dup) if flag}
    assert found["num_duplicates"] == len(marked)
    # planted copies (identical tiles) found with precision and recall 1; other
    # tiles of a texture reach 0.9997 (histograms are alike), below the threshold
    pairs = {frozenset(p) for p in marked.items()}
    assert pairs == {frozenset(p) for p in copies.items()}
    dataset.delete()


def test_noise_of_objects_is_reassigned_and_put_back(tmp_path):
    dataset, _ = strips(tmp_path, num_samples=40, seed=2)
    rng = np.random.default_rng(0)
    odd = dataset.take(8, seed=0)  # a few objects given stray vectors: noise
    for sample in odd:
        sample.ground_truth.detections[0].embedding = rng.uniform(
            0, 1, len(sample.ground_truth.detections[0].embedding)).astype(np.float32)
        sample.save()
    cluster(dataset, method="hdbscan", hdbscan__min_cluster_size=10, reduce="none")
    noise_before = objects(dataset, "tex_cluster")[0].count("-1")
    assert noise_before >= 4
    moved = operator("reassign_noise")(dataset, "tex", max_distance=None)
    assert moved["num_moved"] == noise_before and moved["noise"] == 0
    assert objects(dataset, "tex_cluster")[0].count("-1") == 0
    assert objects(dataset, "tex_reassigned")[0].count(True) == noise_before
    operator("reassign_noise")(dataset, "tex", undo=True)
    assert objects(dataset, "tex_cluster")[0].count("-1") == noise_before
    dataset.delete()


def test_new_objects_are_assigned_and_the_panel_shows_patch_runs(tiles):
    cluster(tiles)
    sample = tiles.first()
    original = sample.ground_truth.detections[0]
    sample.ground_truth.detections.append(fo.Detection(
        label=original.label, bounding_box=original.bounding_box, embedding=original.embedding))
    sample.save()
    assigned = operator("assign_to_clusters")(tiles, "tex")
    assert assigned["num_assigned"] == 1
    clusters = objects(tiles, "tex_cluster")[0]
    assert None not in clusters
    first = tiles.first().ground_truth.detections
    assert first[-1].tex_cluster == first[0].tex_cluster  # a copy joins its original

    # each card shows its objects' crops: single tiles, of its texture's tint
    shown = plugin_module("clustering.panel").overview(tiles, "tex")
    tints = []
    for card in shown["clusters"]:
        crops = [_image(url) for url in card["thumbnails"]]
        assert crops and {crop.size for crop in crops} == {(TILE, TILE)}
        tints.append({int(np.argmax(np.asarray(c).reshape(-1, 3).mean(axis=0))) for c in crops})
    assert sorted(map(tuple, tints)) == [(0,), (1,), (2,)]


def _image(data_url):
    """The image a data URL holds."""
    import base64
    import io

    header, data = data_url.split(",", 1)
    assert header.startswith("data:image/")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def test_the_form_offers_label_fields_then_their_objects_vector_attributes(tiles):
    fields = form("compute_clusters", tiles, dict(run_key="tex", embeddings="embedding"))
    assert fields["patches_field"]["type"]["values"] == ["ground_truth"]
    assert fields["embeddings"]["invalid"]  # no sample-level vectors: none offered
    assert "pick one of: none found" in fields["embeddings"]["error_message"]
    fields = form("compute_clusters", tiles, dict(
        run_key="tex", patches_field="ground_truth", embeddings="embedding",
        kmeans__n_clusters=3))
    assert fields["embeddings"]["type"]["values"] == ["embedding"]
    assert not any(p.get("invalid") for p in fields.values())
    fields = form("compute_clusters", tiles, dict(
        run_key="tex", patches_field="ground_truth", embeddings="vector"))
    assert fields["embeddings"]["invalid"]
    assert "no object of 'ground_truth' has" in fields["embeddings"]["error_message"]


def test_above_map_max_the_map_shows_the_objects_of_a_random_part(tiles, monkeypatch):
    monkeypatch.setattr(plugin_module("clustering.layout"), "MAP_MAX", 30)
    summary = cluster(tiles)
    shown = summary["map"]["shown"]
    assert shown == 30  # of 90 objects
    brain = tiles.load_brain_results("tex_map")
    assert len(brain.current_label_ids) == shown and brain.points.shape == (shown, 2)
    assert set(brain.current_label_ids) < set(objects(tiles, "id")[0])
