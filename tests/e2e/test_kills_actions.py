"""Actions on clusters killed inside their commit (``CLUSTERLAB_FAILPOINT``):
after the kill, the next call of the plugin shows the old marks or the new
ones, whole, and the run's record agrees with its fields."""

import signal

import pytest
from fiftyone import ViewField as F

from conftest import operator
from test_cluster_actions import THRESHOLD, base, dataset  # noqa: F401 (fixtures)

from .test_kills import Child, staged_left

pytestmark = pytest.mark.e2e


def marks(dataset):  # noqa: F811 (the fixture)
    """``(threshold, duplicates marked)`` as the next call finds them, after
    checking that the run's counts are what the fields hold."""
    operator("get_clustering_run_info")(dataset, "dig")  # the next call
    dataset.reload()
    stored = dataset.load_run_results("dig", cache=False).duplicates
    marked = dataset.match(F("dig_duplicate") == True)  # noqa: E712
    assert marked.count() == marked.exists("dig_dup_of").count() == stored["num_duplicates"]
    assert dataset.match(F("dig_duplicate") == False).count() == stored["num_groups"]  # noqa: E712
    assert staged_left() == (0, 0)
    return stored["threshold"], stored["num_duplicates"]


@pytest.mark.parametrize("failpoint,whole", [
    ("staged", "old"),      # not committed: rolled back
    ("committed", "new"),   # committed, nothing applied: rolled forward
    ("step1", "new"),       # both fields written, the run's record not yet
])
def test_duplicate_search_killed_inside_its_commit(dataset, failpoint, whole):  # noqa: F811
    old = operator("find_cluster_duplicates")(dataset, "dig", threshold=1.0, progress=False)
    child = Child(dataset, "find_cluster_duplicates", failpoint=failpoint, run_key="dig",
                  threshold=THRESHOLD)
    assert child.wait() == -signal.SIGKILL, child.err[-1500:]
    found = marks(dataset)
    assert found == ((1.0, old["num_duplicates"]) if whole == "old" else (THRESHOLD, 110))


@pytest.mark.parametrize("failpoint,whole", [("staged", "old"), ("step2", "new")])
def test_noise_reassignment_killed_inside_its_commit(dataset, failpoint, whole):  # noqa: F811
    noise = dataset.count_values("raw_cluster")["-1"]
    child = Child(dataset, "reassign_noise", failpoint=failpoint, run_key="raw")
    assert child.wait() == -signal.SIGKILL, child.err[-1500:]
    info = operator("get_clustering_run_info")(dataset, "raw")  # the next call
    dataset.reload()
    counts = dataset.count_values("raw_cluster")
    assert {c["id"]: c["size"] for c in info["clusters"]} == {
        c: n for c, n in counts.items() if c != "-1"}
    assert info["noise"]["size"] == counts["-1"]
    if whole == "old":
        assert counts["-1"] == noise and not dataset.has_field("raw_reassigned")
    else:
        moved = dataset.match(F("raw_reassigned") == True)  # noqa: E712
        record = dataset.load_run_results("raw", cache=False).noise_reassigned
        assert moved.count() == record["num_moved"] == noise - counts["-1"] > 0
        assert moved.exists("raw_dist").count() == moved.count()
        operator("reassign_noise")(dataset, "raw", undo=True, progress=False)
        assert dataset.count_values("raw_cluster")["-1"] == noise
    assert staged_left() == (0, 0)
