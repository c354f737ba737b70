"""Acting on clusters: near-duplicates within clusters, samples of each
cluster, tags on whole clusters, HDBSCAN's noise reassigned and put back.

The data are scikit-learn's 1,797 handwritten digits (their 64 pixel values
as the embedding) with planted duplicates: exact copies and near-copies
(pixel noise) of some digits, whose true groups the tests know."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

import fiftyone as fo
from fiftyone import ViewField as F
from conftest import execute, form, make_dataset, operator, plugin_module, snapshot
from test_consistency import sizes_agree

params_module = plugin_module("clustering.params")
ParameterError, InputError = params_module.ParameterError, params_module.InputError
duplicates_module = plugin_module("clustering.duplicates")

NEAR, EXACT, BOTH = 50, 20, 20  # digits given a near-copy, an exact copy, one of each
NUM_COPIES = NEAR + EXACT + 2 * BOTH
# Distinct 8x8 digits are alike: the most similar pair of the 1,797 reaches
# cosine 0.9956 in pixel space. Near-copies (noise of s.d. 0.25 on 0..16
# pixel values) stay above 0.998. Real embeddings (CLIP) separate far more.
THRESHOLD = 0.997


def planted_digits():
    """Pixels, digit and planted group (-1 for none) of each sample: the
    digits, then copies of some of them."""
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(X), NEAR + EXACT + BOTH, replace=False)
    near = list(chosen[:NEAR]) + list(chosen[NEAR + EXACT:])
    exact = list(chosen[NEAR:])
    noisy = np.clip(X[near] + rng.normal(0, 0.25, (len(near), X.shape[1])), 0, 16)
    copies = np.vstack([noisy, X[exact]]).astype(np.float32)
    origin = np.array(near + exact)
    group = np.full(len(X) + len(copies), -1)
    group[origin] = origin
    group[len(X):] = origin
    return np.vstack([X, copies]), np.r_[y, y[origin]], group


@pytest.fixture(scope="module")
def base():
    """The planted digits with three runs, each with distances: k-means
    (``dig``), HDBSCAN on UMAP (``hdb``, its noise few and ambiguous) and
    HDBSCAN on the pixels (``raw``, a quarter of them noise)."""
    X, y, group = planted_digits()
    dataset = make_dataset(X, y, field="pixels")
    dataset.set_values("group", [int(g) for g in group])
    run = operator("compute_clusters")
    run(dataset, run_key="dig", embeddings="pixels", method="kmeans", kmeans__n_clusters=10,
        reduce="none", distance_field="dig_dist", random_state=0, progress=False)
    run(dataset, run_key="hdb", embeddings="pixels", method="hdbscan",
        distance_field="hdb_dist", random_state=0, progress=False)
    run(dataset, run_key="raw", embeddings="pixels", method="hdbscan", reduce="none",
        hdbscan__min_cluster_size=20, hdbscan__min_samples=3, distance_field="raw_dist",
        progress=False)
    yield dataset
    dataset.delete()


@pytest.fixture(scope="module")
def small():
    """300 digits with a k-means run (``dig``) and an HDBSCAN run (``hdb``):
    cheap to snapshot whole, for the bad input tests."""
    X, y, _ = planted_digits()
    dataset = make_dataset(X[:300], y[:300], field="pixels")
    run = operator("compute_clusters")
    run(dataset, run_key="dig", embeddings="pixels", method="kmeans", kmeans__n_clusters=5,
        reduce="none", random_state=0, progress=False)
    run(dataset, run_key="hdb", embeddings="pixels", method="hdbscan", reduce="none",
        progress=False)
    yield dataset
    dataset.delete()


@pytest.fixture
def dataset(base):
    clone = base.clone()
    yield clone
    clone.delete()


def values_of(dataset, *fields):
    return dict(zip(dataset.values("id"), zip(*dataset.values(list(fields)))))


# find_cluster_duplicates


def test_planted_duplicates_are_found_with_high_precision_and_recall(dataset):
    result = operator("find_cluster_duplicates")(dataset, "dig", threshold=THRESHOLD,
                                                 progress=False)
    group = dict(zip(dataset.values("id"), dataset.values("group")))
    marked = dataset.match(F("dig_duplicate") == True)  # noqa: E712
    pairs = list(zip(*marked.values(["id", "dig_dup_of"])))
    correct = sum(group[d] >= 0 and group[d] == group[k] for d, k in pairs)
    precision, recall = correct / len(pairs), correct / NUM_COPIES
    print(f"precision {precision:.3f}, recall {recall:.3f} ({len(pairs)} marked, "
          f"{NUM_COPIES} planted)")
    assert precision >= 0.95 and recall >= 0.95
    assert result["num_duplicates"] == len(pairs)

    # distinct digits are not marked: every mark is on a planted group
    marks = dataset.exists("dig_duplicate")
    assert all(group[i] >= 0 for i in marks.values("id"))
    # each kept sample is its group's most typical: nearest its centre
    dist = dict(zip(dataset.values("id"), dataset.values("dig_dist")))
    kept = set(dataset.match(F("dig_duplicate") == False).values("id"))  # noqa: E712
    assert kept == {k for _, k in pairs} and len(kept) == result["num_groups"]
    for d, k in pairs:
        assert (dist[k], k) <= (dist[d], d)
    # counted per cluster in the run
    stored = dataset.load_run_results("dig", cache=False).duplicates
    per_cluster = marked.count_values("dig_cluster")
    assert {c: n["duplicates"] for c, n in stored["clusters"].items() if n["duplicates"]} \
        == per_cluster
    assert stored["num_duplicates"] == len(pairs) and stored["threshold"] == THRESHOLD
    assert dataset.get_field("dig_dup_of").info["clusterlab_run"] == "dig"


def test_a_new_search_replaces_the_marks(dataset):
    find = operator("find_cluster_duplicates")
    find(dataset, "dig", threshold=THRESHOLD, progress=False)
    result = find(dataset, "dig", threshold=1.0, progress=False)  # identical vectors only
    pixels = dict(zip(dataset.values("id"), dataset.values("pixels")))
    pairs = list(zip(*dataset.match(F("dig_duplicate") == True).values(  # noqa: E712
        ["id", "dig_dup_of"])))
    assert len(pairs) == result["num_duplicates"] == EXACT + BOTH
    assert all(np.array_equal(pixels[d], pixels[k]) for d, k in pairs)
    assert dataset.count_values("dig_duplicate") == {True: EXACT + BOTH,
                                                    False: EXACT + BOTH, None: len(dataset)
                                                    - 2 * (EXACT + BOTH)}
    assert dataset.get_run_info("dig").config.duplicates["threshold"] == 1.0


def test_noise_is_searched_only_when_asked_and_the_operators_run_through_fiftyone(dataset):
    without = execute("find_cluster_duplicates", dataset, dict(run_key="hdb"))
    without.raise_exceptions()
    assert "-1" not in without.result["clusters"]
    assert not dataset.match(F("hdb_cluster") == "-1").exists("hdb_duplicate")
    both = operator("find_cluster_duplicates")(dataset, "hdb", threshold=THRESHOLD,
                                              include_noise=True, progress=False)
    noise = dataset.match(F("hdb_cluster") == "-1")
    assert both["clusters"]["-1"]["duplicates"] == noise.match(
        F("hdb_duplicate") == True).count()  # noqa: E712
    tagged = execute("tag_clusters", dataset, dict(run_key="hdb", clusters=["-1"], tag="n"))
    tagged.raise_exceptions()
    assert tagged.result["num_changed"] == len(noise) == dataset.count_sample_tags()["n"]


def test_a_search_is_queued_only_when_its_parameters_hold(dataset):
    from fiftyone.operators.delegated import DelegatedOperationService

    find = operator("find_cluster_duplicates")
    with pytest.raises(ParameterError, match="threshold"):
        find(dataset, "dig", threshold=0.1, delegate=True)
    queued = find(dataset, "dig", delegate=True)
    assert queued.run_state == "queued" and queued.operator.endswith("find_cluster_duplicates")
    DelegatedOperationService().delete_operation(queued.id)


def test_the_search_is_blockwise_and_finds_the_same_at_any_block_size(monkeypatch):
    X, _, _ = planted_digits()
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    whole = duplicates_module.mark(X, THRESHOLD)
    monkeypatch.setattr(duplicates_module, "_BLOCK", 5 * len(X))  # 5 rows at a time
    assert np.array_equal(duplicates_module.mark(X, THRESHOLD), whole)
    assert (whole >= 0).sum() >= NUM_COPIES


def test_duplicate_fields_follow_the_run_when_renamed_and_deleted(dataset):
    operator("find_cluster_duplicates")(dataset, "dig", threshold=THRESHOLD, progress=False)
    before = dataset.values("dig_dup_of")
    renamed = operator("rename_clustering_run")(dataset, "dig", "digits2")
    assert renamed["renamed_fields"]["dig_dup_of"] == "digits2_dup_of"
    assert dataset.values("digits2_dup_of") == before
    assert operator("get_clustering_run_info")(dataset, "digits2")["leftovers"] == {}
    again = operator("find_cluster_duplicates")(dataset, "digits2", threshold=THRESHOLD,
                                                progress=False)
    assert again["dup_of_field"] == "digits2_dup_of"
    deleted = operator("delete_clustering_run")(dataset, "digits2")
    assert {"digits2_dup_of", "digits2_duplicate"} <= set(deleted["deleted_fields"])
    assert not [f for f in dataset.get_field_schema() if f.startswith(("dig_", "digits2"))]


def test_overwriting_the_run_removes_its_duplicate_marks(dataset):
    operator("find_cluster_duplicates")(dataset, "dig", progress=False)
    operator("compute_clusters")(dataset, run_key="dig", embeddings="pixels",
                                 kmeans__n_clusters=4, reduce="none", overwrite=True,
                                 progress=False)
    assert not dataset.has_field("dig_dup_of") and not dataset.has_field("dig_duplicate")


# sample_clusters


def test_typical_samples_are_what_open_cluster_shows_first(dataset):
    result = operator("sample_clusters")(dataset, "dig", num_samples=5)
    view = dataset.load_saved_view("dig_sample")
    ids = view.values("id")
    assert len(ids) == result["num_samples"] == 50
    assert result["counts"] == {str(c): 5 for c in range(10)}
    for c in range(10):
        first = operator("open_cluster")(dataset, "dig", str(c)).limit(5).values("id")
        assert ids[5 * c:5 * c + 5] == first


def test_spread_samples_start_typical_and_avoid_near_duplicates(dataset):
    sample = operator("sample_clusters")
    sample(dataset, "dig", num_samples=8, save_as="tag", name="typical8")
    sample(dataset, "dig", num_samples=8, order="spread", save_as="tag", name="spread8")
    assert dataset.count_sample_tags() == {"typical8": 80, "spread8": 80}

    def closest_pairs(tag):
        """Per cluster, the smallest cosine distance between two samples taken."""
        out = []
        for c in range(10):
            X = np.array(dataset.match_tags(tag).match(F("dig_cluster") == str(c))
                         .values("pixels"))
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            similarity = X @ X.T
            np.fill_diagonal(similarity, -1)
            out.append(1 - similarity.max())
        return np.array(out)

    spread, typical = closest_pairs("spread8"), closest_pairs("typical8")
    assert np.mean(spread) > 2 * np.mean(typical)
    assert (spread > 1 - THRESHOLD).all()  # no planted duplicate pair taken
    for c in range(10):  # each cluster's most typical sample comes first in both
        cluster = dataset.match(F("dig_cluster") == str(c))
        assert set(cluster.match_tags("spread8").values("id")) & set(
            operator("open_cluster")(dataset, "dig", str(c)).limit(1).values("id"))


def test_noise_is_sampled_only_when_asked(dataset):
    sample = operator("sample_clusters")
    without = sample(dataset, "hdb", num_samples=3)
    assert "-1" not in without["counts"]
    assert "-1" not in dataset.load_saved_view("hdb_sample").distinct("hdb_cluster")
    noise_size = dataset.load_run_results("hdb").noise["size"]
    assert noise_size >= 3
    both = sample(dataset, "hdb", num_samples=3, include_noise=True, overwrite=True)
    assert both["counts"]["-1"] == 3
    view = dataset.load_saved_view("hdb_sample")
    assert view.count_values("hdb_cluster")["-1"] == 3
    assert view.values("hdb_cluster")[-3:] == ["-1"] * 3  # noise last


def test_a_tag_or_view_is_replaced_only_with_overwrite(dataset):
    sample = operator("sample_clusters")
    sample(dataset, "dig", num_samples=2, save_as="tag", name="pick")
    first = set(dataset.match_tags("pick").values("id"))
    with pytest.raises(ParameterError, match=r"'Name' \(name\) tag 'pick' is already on 20"):
        sample(dataset, "dig", num_samples=3, save_as="tag", name="pick")
    sample(dataset, "dig", num_samples=1, order="spread", save_as="tag", name="pick",
           overwrite=True)
    now = set(dataset.match_tags("pick").values("id"))
    assert len(now) == 10 and now <= first  # the most typical stays, the rest lost the tag


# tag_clusters


@pytest.mark.parametrize("public_api", [False, True])
def test_tags_go_on_whole_clusters_and_come_off(dataset, monkeypatch, public_api):
    if public_api:
        monkeypatch.setenv("CLUSTERLAB_PUBLIC_API", "1")
    sizes = dataset.count_values("dig_cluster")
    already = dataset.match(F("dig_cluster") == "0").limit(7)
    already.tag_samples("review")
    dataset.take(30, seed=1).tag_samples("mine")
    mine = set(dataset.match_tags("mine").values("id"))

    tag = operator("tag_clusters")
    added = tag(dataset, "dig", clusters=["0", 3], tag="review")
    assert added["num_samples"] == sizes["0"] + sizes["3"]
    assert added["num_changed"] == sizes["0"] + sizes["3"] - 7
    tagged = dataset.match_tags("review")
    assert set(tagged.distinct("dig_cluster")) == {"0", "3"}
    assert len(tagged) == sizes["0"] + sizes["3"]

    removed = tag(dataset, "dig", clusters="0", tag="review", action="remove")
    assert removed["num_changed"] == sizes["0"]
    assert dataset.match_tags("review").count_values("dig_cluster") == {"3": sizes["3"]}
    assert set(dataset.match_tags("mine").values("id")) == mine  # other tags kept


def test_noise_can_be_tagged(dataset):
    form_fields = form("tag_clusters", dataset, dict(run_key="hdb"))
    choices = [c["value"] for c in form_fields["clusters"]["view"]["choices"]]
    assert choices[-1] == "-1" and len(choices) == len(dataset.distinct("hdb_cluster"))
    result = operator("tag_clusters")(dataset, "hdb", clusters=["-1"], tag="noise")
    assert result["num_changed"] == dataset.load_run_results("hdb").noise["size"]
    assert dataset.match_tags("noise").distinct("hdb_cluster") == ["-1"]


# reassign_noise


def nearest_centres(dataset, key, ids):
    """Each sample's nearest centre and distance in the run's input space,
    computed here from the recorded centres."""
    results = dataset.load_run_results(key, cache=False)
    centres = np.array([c.get("input_centroid", c["centroid"]) for c in results.clusters])
    pixels = dict(zip(dataset.values("id"), dataset.values("pixels")))
    X = np.array([pixels[i] for i in ids])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    dist = np.linalg.norm(X[:, None, :] - centres[None], axis=2)
    closest = dist.argmin(axis=1)
    radius = np.array([c["radius"] for c in results.clusters])
    return closest.astype(str), dist[np.arange(len(ids)), closest], radius[closest]


@pytest.mark.parametrize("public_api", [False, True])
def test_noise_joins_the_nearest_cluster_within_the_limit(dataset, monkeypatch, public_api):
    if public_api:
        monkeypatch.setenv("CLUSTERLAB_PUBLIC_API", "1")
    noise_ids = dataset.match(F("hdb_cluster") == "-1").values("id")
    clustered_max = dataset.bounds("hdb_dist")[1]
    result = operator("reassign_noise")(dataset, "hdb", max_distance=1.0, progress=False)

    closest, dist, radius = nearest_centres(dataset, "hdb", noise_ids)
    after = values_of(dataset.select(noise_ids), "hdb_cluster", "hdb_dist", "hdb_reassigned")
    within = dist <= 1.0 * radius
    assert 0 < within.sum() < len(noise_ids)
    for i, near, inside in zip(noise_ids, closest, within):
        cluster, distance, moved = after[i]
        assert (cluster, moved) == ((near, True) if inside else ("-1", None))
        assert (distance is not None) == inside
        assert distance is None or distance > clustered_max  # sorts after the clustered
    assert result["num_moved"] == within.sum() and result["noise"] == (~within).sum()
    assert sizes_agree(dataset, "hdb")["-1"] == (~within).sum()
    record = dataset.load_run_results("hdb", cache=False).noise_reassigned
    assert sum(record["clusters"].values()) == record["num_moved"] == within.sum()


def test_reassigned_noise_mostly_joins_its_digits_cluster(dataset):
    from sklearn.metrics import adjusted_rand_score

    truth = dataset.values("ground_truth.label")
    ari_before = adjusted_rand_score(truth, dataset.values("raw_cluster"))
    majority = {}
    for c in dataset.distinct("raw_cluster"):
        counts = dataset.match(F("raw_cluster") == c).count_values("ground_truth.label")
        majority[c] = max(counts, key=counts.get)
    result = operator("reassign_noise")(dataset, "raw", progress=False)
    moved = dataset.match(F("raw_reassigned") == True)  # noqa: E712
    digits, cluster, distance = moved.values(["ground_truth.label", "raw_cluster", "raw_dist"])
    accuracy = np.mean([t == majority[c] for t, c in zip(digits, cluster)])
    ari_after = adjusted_rand_score(truth, dataset.values("raw_cluster"))
    print(f"{len(digits)} of {len(digits) + result['noise']} noise samples moved; "
          f"{accuracy:.2f} joined their digit's cluster; ARI {ari_before:.3f} -> "
          f"{ari_after:.3f}")
    assert len(digits) == result["num_moved"] >= 100
    assert accuracy >= 0.65 and ari_after > ari_before + 0.05
    # not reduced: the distance recorded is to the centre, as for the clustered
    _, own, _ = nearest_centres(dataset, "raw", moved.values("id"))
    assert np.allclose(distance, own, atol=1e-4)


def test_undo_restores_exactly_and_reassigning_again_starts_from_the_noise(dataset):
    name = operator("name_cluster")
    zeros = name(dataset, "hdb", "0", "zeros")["name"]
    leftovers = name(dataset, "hdb", "-1", "leftovers")["name"]
    fields = ("hdb_cluster", "hdb_dist", "hdb_cluster_label")
    before = values_of(dataset, *fields)
    sizes = {c["id"]: c["size"] for c in dataset.load_run_results("hdb").clusters}
    schema = set(dataset.get_field_schema())
    reassign = operator("reassign_noise")
    untouched = snapshot(dataset)
    nothing = reassign(dataset, "hdb", undo=True, progress=False)  # nothing moved yet
    assert "Nothing to undo" in nothing["summary"] and snapshot(dataset) == untouched

    everything = reassign(dataset, "hdb", max_distance=None, progress=False)
    assert everything["noise"] == 0 and dataset.count_values("hdb_cluster").get("-1") is None
    labels = dataset.match(F("hdb_cluster") == "0").distinct("hdb_cluster_label")
    assert labels == [zeros]  # moved samples take their cluster's name
    tight = reassign(dataset, "hdb", max_distance=0.95, progress=False)
    assert 0 < tight["num_moved"] < everything["num_moved"]
    back = dataset.match(F("hdb_cluster") == "-1")
    assert back.count() == tight["noise"] and back.exists("hdb_dist").count() == 0
    assert back.distinct("hdb_cluster_label") == [leftovers]
    sizes_agree(dataset, "hdb")

    undone = reassign(dataset, "hdb", undo=True, progress=False)
    assert undone["num_moved"] == 0
    assert values_of(dataset, *fields) == before
    assert {c["id"]: c["size"] for c in dataset.load_run_results("hdb").clusters} == sizes
    assert set(dataset.get_field_schema()) == schema
    assert getattr(dataset.load_run_results("hdb", cache=False), "noise_reassigned",
                   None) is None
    sizes_agree(dataset, "hdb")


# bad input: a message naming the parameter, and the dataset unchanged


def assert_rejected(dataset, operator_name, phrases, error=ParameterError, **params):
    before = snapshot(dataset)
    with pytest.raises(error) as raised:
        operator(operator_name)(dataset, **params)
    for phrase in phrases:
        assert phrase in str(raised.value), str(raised.value)
    assert snapshot(dataset) == before


@pytest.mark.parametrize("operator_name,params,phrases", [
    ("find_cluster_duplicates", dict(run_key="nope"),
     ["'Clustering run' (run_key)", "has no run 'nope'"]),
    ("find_cluster_duplicates", dict(run_key="dig", threshold=1.5),
     ["'Similarity threshold' (threshold) must be a number in [0.5, 1]; got 1.5"]),
    ("find_cluster_duplicates", dict(run_key="dig", threshold="high"),
     ["(threshold) must be a number"]),
    ("find_cluster_duplicates", dict(run_key="dig", include_noise="maybe"),
     ["'Include noise' (include_noise) must be true or false"]),
    ("sample_clusters", dict(run_key="dig", num_samples=0),
     ["'Samples per cluster' (num_samples) must be an integer in [1, 10000]; got 0"]),
    ("sample_clusters", dict(run_key="dig", order="random"),
     ["'Order' (order) must be one of 'typical', 'spread'"]),
    ("sample_clusters", dict(run_key="dig", save_as="file"),
     ["'Save as' (save_as) must be one of 'view', 'tag'"]),
    ("sample_clusters", dict(run_key="dig", name="!!!"),
     ["'Name' (name) cannot name a saved view"]),
    ("tag_clusters", dict(run_key="dig", clusters=["0", "99"], tag="t"),
     ["'Clusters' (clusters) names no cluster of run 'dig': 99"]),
    ("tag_clusters", dict(run_key="dig", clusters=["-1"], tag="t"),
     ["(clusters) names no cluster of run 'dig': -1"]),
    ("tag_clusters", dict(run_key="dig", clusters=[], tag="t"),
     ["'Clusters' (clusters) is required"]),
    ("tag_clusters", dict(run_key="dig", clusters=["0"]), ["'Tag' (tag) is required"]),
    ("tag_clusters", dict(run_key="dig", clusters=["0"], tag="t", action="toggle"),
     ["'Action' (action) must be one of 'add', 'remove'"]),
    ("reassign_noise", dict(run_key="dig"),
     ["'Clustering run' (run_key) names run 'dig' (kmeans), which has no noise"]),
    ("reassign_noise", dict(run_key="hdb", undo="sometimes"),
     ["'Undo' (undo) must be true or false; got 'sometimes'"]),
    ("reassign_noise", dict(run_key="hdb", max_distance=-1),
     ["'Max distance (x radius)' (max_distance) must be a number in [0, 1000]"]),
])
def test_bad_input_names_the_parameter_and_changes_nothing(small, operator_name, params,
                                                           phrases):
    assert_rejected(small, operator_name, phrases, **params)


def test_existing_names_are_not_overwritten(small):
    dataset = small.clone()
    dataset.save_view("dig_sample", dataset.limit(3))
    assert_rejected(dataset, "sample_clusters", [
        "'Name' (name) saved view 'dig_sample' already exists",
        "'Overwrite' (overwrite)"], run_key="dig")
    dataset.tag_samples("dig_sample")
    assert_rejected(dataset, "sample_clusters", [
        "'Name' (name) tag 'dig_sample' is already on 300 samples"], run_key="dig",
        save_as="tag")
    dataset.save_view("My picks", dataset.limit(3))
    assert_rejected(dataset, "sample_clusters", ["saved view 'My picks' already has the "
                    "address 'my-picks'"], run_key="dig", name="my-picks", overwrite=True)
    dataset.add_sample_field("dig_duplicate", fo.BooleanField)
    assert_rejected(dataset, "find_cluster_duplicates", [
        "Field 'dig_duplicate' already exists, written by you or another tool"],
        error=InputError, run_key="dig")
    dataset.add_sample_field("hdb_reassigned", fo.StringField)
    assert_rejected(dataset, "reassign_noise", ["Field 'hdb_reassigned' already exists"],
                    error=InputError, run_key="hdb")
    dataset.delete()


def test_unknown_parameters_are_refused_like_python_does(small):
    with pytest.raises(TypeError, match="unknown parameter"):
        operator("tag_clusters")(small, "dig", clusters=["0"], tag="t", tags=["x"])


def test_forms_show_errors_under_the_parameter(small):
    fields = form("find_cluster_duplicates", small, dict(run_key="dig", threshold=2))
    assert fields["threshold"]["invalid"]
    assert "must be a number in [0.5, 1]" in fields["threshold"]["error_message"]
    fields = form("reassign_noise", small, dict(run_key="dig"))
    assert "has no noise" in fields["run_key"]["error_message"]
    fields = form("sample_clusters", small, dict(run_key="dig"))
    assert fields["name"]["default"] == "dig_sample" and not fields["name"].get("invalid")
    fields = form("tag_clusters", small, dict(run_key="dig", clusters=["0", "42"], tag="t"))
    assert "names no cluster of run 'dig': 42" in fields["clusters"]["error_message"]
    labels = [c["label"] for c in fields["clusters"]["view"]["choices"]]
    assert labels[0].startswith("0 (") and len(labels) == 5
