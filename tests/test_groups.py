"""Two levels: every clustering run also joins its clusters into groups
(Ward over the cluster centres, cut where the merge heights jump or at
n_groups), written to <run_key>_group, shown in run info, opened by
open_cluster and named by label_clusters_with_llm."""

from collections import Counter

import numpy as np
import pytest

import fiftyone as fo
from conftest import execute, form, make_dataset, noisy_run, operator, plugin_module
from llm_server import LLMServer
from test_labeling import KEY, MODEL, painted

ParameterError = plugin_module("clustering.params").ParameterError
F = fo.ViewField


def compute(dataset, key="run", field="embedding", **params):
    return operator("compute_clusters")(
        dataset, run_key=key, embeddings=field, method="kmeans", reduce="none",
        random_state=0, progress=False, **params)


def recorded_groups(dataset, key):
    """The run's recorded groups, after checking that they and the group
    field agree: every cluster in exactly one group, each sample's group
    that of its cluster, each group's size what the field holds."""
    dataset.reload()
    results = dataset.load_run_results(key, cache=False)
    groups = results.groups
    group_of = {c: g["id"] for g in groups for c in g["clusters"]}
    assert sorted(group_of, key=int) == [c["id"] for c in results.clusters]
    assert len(group_of) == sum(len(g["clusters"]) for g in groups)
    clusters = dataset.values(f"{key}_cluster")
    assert dataset.values(f"{key}_group") == [
        None if c is None else group_of.get(c, "-1") for c in clusters]
    counts = dataset.count_values(f"{key}_group")
    assert {g["id"]: g["size"] for g in groups} == {
        g: n for g, n in counts.items() if g not in (None, "-1")}
    assert [g["size"] for g in groups] == sorted((g["size"] for g in groups), reverse=True)
    return groups


def planted(seed=0, per=60):
    """12 blobs in 3 well-separated super-clusters of 4: ``(X, blob, super)``.
    The blobs stand apart within their super-cluster too: two levels, of
    which the groups are to find the coarse one."""
    rng = np.random.default_rng(seed)
    supers = rng.normal(size=(3, 16)) * 20
    blob_centres = supers.repeat(4, axis=0) + rng.normal(size=(12, 16)) * 3
    blob = np.arange(12).repeat(per)
    X = blob_centres[blob] + rng.normal(size=(len(blob), 16))
    return X.astype(np.float32), blob, blob // 4


def purity(found, truth):
    """Share of the samples whose group holds mostly their true class."""
    found, truth = np.asarray(found), np.asarray(truth)
    return sum(Counter(truth[found == g]).most_common(1)[0][1]
               for g in np.unique(found)) / len(found)


def test_the_automatic_cut_finds_a_planted_hierarchy():
    X, blob, super_cluster = planted()
    dataset = make_dataset(X, super_cluster)
    summary = compute(dataset, kmeans__n_clusters=12, normalize=False)
    clusters = np.array(dataset.values("run_cluster"), dtype=int)
    groups = np.array(dataset.values("run_group"), dtype=int)
    print(f"cluster purity wrt blobs {purity(clusters, blob):.3f}, group purity wrt "
          f"super-clusters {purity(groups, super_cluster):.3f}, groups "
          f"{[g['clusters'] for g in summary['groups']]}")
    assert len(summary["groups"]) == 3
    assert purity(groups, super_cluster) == 1.0  # each group is one super-cluster
    assert purity(super_cluster, groups) == 1.0  # ... whole
    recorded_groups(dataset, "run")
    config = dataset.get_run_info("run").config
    assert (config.group_field, config.num_groups, config.n_groups) == ("run_group", 3, None)
    grouping = dataset.load_run_results("run", cache=False).grouping
    assert grouping["automatic"] and len(grouping["heights"]) == 11
    assert grouping["heights"][0] > 2 * grouping["floor"]  # the blobs stand apart too

    # n_groups honoured: two groups, each made of whole super-clusters
    compute(dataset, kmeans__n_clusters=12, normalize=False, n_groups=2, overwrite=True)
    groups = np.array(dataset.values("run_group"), dtype=int)
    assert len(recorded_groups(dataset, "run")) == 2
    assert purity(super_cluster, groups) == 1.0
    assert dataset.get_run_info("run").config.n_groups == 2
    dataset.delete()


def test_groups_of_digits_join_clusters_that_look_alike(digits):
    summary = compute(digits, key="digits_groups", field="pixels",
                      kmeans__n_clusters=10, n_groups=4)
    groups = recorded_groups(digits, "digits_groups")
    assert len(groups) == 4
    clusters = digits.values("digits_groups_cluster")
    truth = digits.values("ground_truth.label")
    majority = {c: Counter(t for k, t in zip(clusters, truth) if k == c).most_common(1)[0][0]
                for c in set(clusters)}
    print("digits per group:", [sorted(majority[c] for c in g["clusters"]) for g in groups])

    # clusters of one group are nearer each other than clusters of different groups
    X = np.array(digits.values("pixels"))
    labels = np.array(clusters, dtype=int)
    centres = np.array([X[labels == c].mean(axis=0) for c in range(10)])
    group_of = {int(c): g["id"] for g in groups for c in g["clusters"]}
    same, other = [], []
    for a in range(10):
        for b in range(a + 1, 10):
            (same if group_of[a] == group_of[b] else other).append(
                np.linalg.norm(centres[a] - centres[b]))
    print(f"centre distances: within groups {np.mean(same):.1f}, across {np.mean(other):.1f}")
    assert same and np.mean(same) < 0.9 * np.mean(other)  # random groups: about 1

    # run info shows the tree: each group, its clusters with sizes
    info = operator("get_clustering_run_info")(digits, "digits_groups")
    assert [g["id"] for g in info["groups"]] == ["0", "1", "2", "3"]
    assert info["groups"][0]["clusters"][0]["size"] > 0
    tree = info["group_tree"].splitlines()
    assert tree[0].startswith("- **Group 0**") and tree[1].startswith("  - cluster ")
    assert sum(line.startswith("  - cluster") for line in tree) == 10
    assert "4 groups" in summary["summary"]
    operator("delete_clustering_run")(digits, "digits_groups")


def test_one_cluster_two_clusters_and_noise():
    # identical vectors: one cluster, one group
    dataset = make_dataset(np.ones((20, 4), dtype=np.float32))
    summary = compute(dataset, kmeans__n_clusters=3)
    assert summary["num_clusters"] == 1 and len(summary["groups"]) == 1
    recorded_groups(dataset, "run")
    dataset.delete()

    # two clusters: one group or two, as the cut decides
    X, _, super_cluster = planted(per=30)
    dataset = make_dataset(X)
    assert len(compute(dataset, kmeans__n_clusters=2, normalize=False)["groups"]) in (1, 2)
    recorded_groups(dataset, "run")
    # two clusters far apart stay two groups; one blob cut in two is one group
    apart = np.vstack([X[super_cluster == 0], X[super_cluster == 0] + 200])
    dataset.delete()
    dataset = make_dataset(apart.astype(np.float32))
    assert len(compute(dataset, kmeans__n_clusters=2, normalize=False)["groups"]) == 2
    dataset.delete()
    rng = np.random.default_rng(1)
    dataset = make_dataset(rng.normal(size=(300, 8)).astype(np.float32))
    summary = compute(dataset, kmeans__n_clusters=2, normalize=False)
    assert len(summary["groups"]) == 1
    summary = compute(dataset, kmeans__n_clusters=6, normalize=False, overwrite=True)
    assert len(summary["groups"]) == 1 and "one group" in " ".join(summary["notes"])
    dataset.delete()

    # noise stays out of every group
    dataset = noisy_run("noisy")
    groups = recorded_groups(dataset, "noisy")
    noise = dataset.count_values("noisy_cluster")["-1"]
    assert noise and dataset.count_values("noisy_group")["-1"] == noise
    assert sum(g["size"] for g in groups) == len(dataset) - noise
    dataset.delete()


def test_assigned_and_reassigned_samples_get_their_clusters_group(tmp_path):
    dataset = noisy_run("noisy")
    moved = operator("reassign_noise")(dataset, "noisy", max_distance=None, progress=False)
    assert moved["num_moved"] and dataset.count_values("noisy_group").get("-1") is None
    recorded_groups(dataset, "noisy")  # sizes recounted, the field agreeing
    operator("reassign_noise")(dataset, "noisy", undo=True, progress=False)
    assert dataset.count_values("noisy_group")["-1"] == dataset.count_values(
        "noisy_cluster")["-1"]
    recorded_groups(dataset, "noisy")
    dataset.delete()

    X, _, _ = planted(per=20)
    dataset = make_dataset(X[::2])
    compute(dataset, kmeans__n_clusters=12, normalize=False, n_groups=3)
    added = dataset.add_samples([fo.Sample(filepath=f"/tmp/clusterlab/new{i}.png",
                                           embedding=x) for i, x in enumerate(X[1::2])])
    assert operator("assign_to_clusters")(dataset, "run", progress=False)["num_assigned"] == len(
        added)
    results = dataset.load_run_results("run", cache=False)
    group_of = {c: g["id"] for g in results.groups for c in g["clusters"]}
    new = dataset.select(added)
    assert new.values("run_group") == [group_of[c] for c in new.values("run_cluster")]
    dataset.delete()


@pytest.mark.parametrize("value,message", [
    (0, r"must be an integer in \[1, 10000\]"),
    (-2, r"must be an integer in \[1, 10000\]"),
    (1.5, "must be an integer"),
    ("two", "must be an integer"),
    (True, "must be an integer"),
    (13, r"must be at most the number of clusters \(kmeans__n_clusters = 12\)"),
])
def test_bad_n_groups_are_refused_naming_the_parameter(value, message):
    dataset = make_dataset(planted(per=5)[0])
    before = dataset.list_runs()
    with pytest.raises(ParameterError, match=r"'Groups' \(n_groups\) " + message):
        compute(dataset, kmeans__n_clusters=12, n_groups=value)
    assert dataset.list_runs() == before and not dataset.has_field("run_group")
    fields = form("compute_clusters", dataset, dict(
        run_key="run", embeddings="embedding", kmeans__n_clusters=12, n_groups=value))
    assert fields["n_groups"].get("invalid") and "n_groups" in fields["n_groups"]["error_message"]
    dataset.delete()


def test_a_field_named_like_the_group_field_is_not_overwritten():
    dataset = make_dataset(planted(per=5)[0])
    dataset.add_sample_field("run_group", fo.StringField)
    with pytest.raises(ParameterError, match="'run_group' is an existing field"):
        compute(dataset, kmeans__n_clusters=4)
    with pytest.raises(ParameterError, match=r"\(cluster_field\) must differ from the field "
                                             "of the run's groups, 'other_group'"):
        compute(dataset, key="other", kmeans__n_clusters=4, cluster_field="other_group")
    dataset.delete()


def test_delete_rename_and_overwrite_take_the_group_field_along():
    X, _, _ = planted(per=20)
    dataset = make_dataset(X)
    compute(dataset, kmeans__n_clusters=12, normalize=False, n_groups=3)
    groups = dataset.values("run_group")
    renamed = operator("rename_clustering_run")(dataset, "run", "moved")
    assert renamed["renamed_fields"]["run_group"] == "moved_group"
    assert not dataset.has_field("run_group") and dataset.values("moved_group") == groups
    assert dataset.get_run_info("moved").config.group_field == "moved_group"
    recorded_groups(dataset, "moved")

    compute(dataset, key="moved", kmeans__n_clusters=6, normalize=False, n_groups=2,
            overwrite=True)
    assert len(recorded_groups(dataset, "moved")) == 2
    assert set(dataset.values("moved_group")) == {"0", "1"}

    deleted = operator("delete_clustering_run")(dataset, "moved")["deleted_fields"]
    assert "moved_group" in deleted and not dataset.has_field("moved_group")
    dataset.delete()


def test_open_cluster_opens_a_group_most_typical_first():
    X, _, _ = planted(per=20)
    dataset = make_dataset(X)
    compute(dataset, kmeans__n_clusters=12, normalize=False, n_groups=3,
            distance_field="run_distance")
    compute(dataset, key="plain", kmeans__n_clusters=12, normalize=False, n_groups=3)
    choices = form("open_cluster", dataset, dict(run_key="run"))["cluster"]["view"]["choices"]
    assert [c["value"] for c in choices][-3:] == ["g0", "g1", "g2"]
    assert choices[-1]["label"].startswith("g2 group: clusters ")

    for key in ("run", "plain"):
        results = dataset.load_run_results(key, cache=False)
        group = results.groups[1]
        result = execute("open_cluster", dataset, dict(run_key=key, cluster="g1"))
        result.raise_exceptions()
        request = result.executor.to_json()["requests"][0]
        view = fo.DatasetView._build(dataset, request["params"]["view"])
        members = dataset.match(F(f"{key}_cluster").is_in(group["clusters"]))
        assert sorted(view.values("id")) == sorted(members.values("id"))
        assert len(view) == group["size"]
        if key == "run":
            distances = view.values("run_distance")
            assert distances == sorted(distances)
        else:  # each cluster's most typical in turn
            reps = {c["id"]: c["representatives"] for c in results.clusters}
            assert view.values("id")[:len(group["clusters"])] == [
                reps[c][0] for c in group["clusters"]]
    shown = plugin_module("clustering.panel").overview(dataset, "run")  # the Clusters panel's cards
    assert [(g["id"], g["size"], g["clusters"]) for g in shown["groups"]] == [
        ("g" + g["id"], g["size"], g["clusters"])
        for g in dataset.load_run_results("run", cache=False).groups]
    via_call = operator("open_cluster")(dataset, "run", "g0")
    assert set(via_call.values("run_group")) == {"0"}
    with pytest.raises(ParameterError, match=r"its groups g0, g1, g2; got 'g7'"):
        operator("open_cluster")(dataset, "run", "g7")
    dataset.delete()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LLMServer(KEY, MODEL, max_side=32) as server:
        yield server


def test_the_llm_names_groups_from_their_clusters(tmp_path, server):
    dataset = painted(tmp_path, centers=4)
    compute(dataset, kmeans__n_clusters=4, n_groups=2, overwrite=True)
    groups = recorded_groups(dataset, "run")
    joined = [g for g in groups if len(g["clusters"]) > 1]
    assert joined

    summary = operator("label_clusters_with_llm")(
        dataset, run_key="run", model=MODEL, base_url=server.url, max_image_size=32,
        num_images=4, delegate=False, progress=False)
    assert server.problems == []
    assert len(server.requests) == 4 + len(joined)  # one more request per joined group
    stored = dataset.load_run_results("run", cache=False)
    cluster_names = {c["id"]: c["name"] for c in stored.clusters}
    group_requests = [r for r in server.requests if "group of clusters" in r.text]
    assert len(group_requests) == len(joined)
    for group in stored.groups:
        assert group["name"], group
        if len(group["clusters"]) == 1:
            assert group["name"] == cluster_names[group["clusters"][0]]
            continue
        asked = [r for r in group_requests
                 if all(cluster_names[c] in r.text for c in group["clusters"])]
        assert len(asked) == 1 and len(asked[0].images) == 4
        assert group["naming"] == "llm" and group["model"] == MODEL
    names = {g["id"]: g["name"] for g in stored.groups}
    assert dataset.values("run_group_label") == [names[g] for g in dataset.values("run_group")]
    config = dataset.get_run_info("run").config
    assert config.labels["group_label_field"] == "run_group_label"
    assert config.labels["prompt"]["group_user"].endswith("Name the group.")
    assert [g["name"] for g in summary["groups"]] == [g["name"] for g in stored.groups]
    info = operator("get_clustering_run_info")(dataset, "run")
    assert f"**Group 0 · {names['0']}**" in info["group_tree"]

    # nothing to name again; a relabel asks again for clusters and groups
    server.requests.clear()
    label_again = dict(run_key="run", model=MODEL, base_url=server.url, max_image_size=32,
                       delegate=False, progress=False)
    operator("label_clusters_with_llm")(dataset, **label_again)
    assert server.requests == []
    operator("label_clusters_with_llm")(dataset, relabel=True, **label_again)
    assert len(server.requests) == 4 + len(joined)

    # samples assigned later get their group's name too
    vectors = dataset.limit(3).values("embedding")
    added = dataset.add_samples([fo.Sample(filepath=f"/tmp/clusterlab/late{i}.png",
                                           embedding=v) for i, v in enumerate(vectors)])
    operator("assign_to_clusters")(dataset, "run", progress=False)
    late = dataset.select(added)
    assert late.values("run_group_label") == [names[g] for g in late.values("run_group")]

    # the group names' field belongs to the run: renamed and deleted with it
    operator("rename_clustering_run")(dataset, "run", "named")
    assert dataset.values("named_group_label") == [names[g] for g in
                                                   dataset.values("named_group")]
    deleted = operator("delete_clustering_run")(dataset, "named")["deleted_fields"]
    assert {"named_group", "named_group_label"} <= set(deleted)
    assert not dataset.has_field("named_group_label")
    dataset.delete()
