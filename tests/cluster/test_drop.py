"""TABLE.DROP deletes the data on the nodes (issue 4, "Tables": mark
dropped, then nodes delete the ranges' data, then the metadata goes).

Real etcd, three real `cairn node` processes, a real router and a real
`cairn controller`: the controller's drop reconciler sends DROP_REPLICA to
every node hosting a replica and deletes the metadata only once all are
gone. A node that is down meanwhile keeps the table dropping until it is
back and has deleted its replica too.
"""
import json
import os

import pytest

from clusterharness import Router, Workdir, real_nodes
from harness import Etcd, Procs, cairn_bin, wait_for


@pytest.fixture(scope="module")
def cl():
    procs, wd = Procs(), Workdir()
    nodes = None
    try:
        etcd = Etcd(wd.path, procs).start()
        nodes = real_nodes(etcd, 3)
        router = Router(procs, wd.path, etcd.url)
        ctl_log = os.path.join(wd.path, "controller.log")
        ctl = procs.start([cairn_bin(), "controller", "--etcd", etcd.url,
                           "--id", "c", "--interval-ms", "200"], ctl_log)
        r = router.client()
        yield {"etcd": etcd, "nodes": nodes, "r": r, "ctl_log": ctl_log}
        r.close()
        router.stop()
        procs.stop(ctl)
        text = open(ctl_log, errors="replace").read()
        assert "Sanitizer" not in text and "runtime error" not in text, text
    finally:
        if nodes:
            nodes.close()
        procs.stop_all()
        wd.cleanup()


def range_ids(etcd):
    return {json.loads(v)["id"] for v in
            etcd.get_prefix(b"/cairn/ranges/").values()}


def hosted(node):
    return {m["range"] for m in node.metrics(0)["ranges"]}


def create_and_fill(cl, name):
    r, etcd = cl["r"], cl["etcd"]
    before = range_ids(etcd)
    assert r.execute_command("TABLE.CREATE", name, "REPLICAS", "3",
                             "SPLITS", "m") == b"OK"
    ranges = range_ids(etcd) - before
    assert len(ranges) == 2
    for i in range(40):
        r.execute_command("KV.PUT", name, "k%02d" % i, "v%d" % i)
        r.execute_command("KV.PUT", name, "z%02d" % i, "v%d" % i)
    for n in cl["nodes"].nodes:
        assert ranges <= hosted(n)
        assert ranges <= n.logged()
    return ranges


def metadata_gone(etcd, name, ranges):
    return (etcd.get(b"/cairn/tables/" + name.encode()) is None and
            not (range_ids(etcd) & ranges))


def assert_deleted_on(node, ranges):
    assert not (hosted(node) & ranges)
    assert not (node.logged() & ranges), node.logged()


def assert_recreated_empty(r, name):
    assert r.execute_command("TABLE.CREATE", name) == b"OK"
    assert r.execute_command("KV.SCAN", name, "", "") == [b"", []]
    assert r.execute_command("KV.GET", name, "k00") is None


def test_drop_deletes_every_replica_then_the_metadata(cl):
    etcd, r = cl["etcd"], cl["r"]
    ranges = create_and_fill(cl, "d1")
    assert r.execute_command("TABLE.DROP", "d1") == b"OK"
    wait_for(lambda: metadata_gone(etcd, "d1", ranges), 30,
             "the controller to finish the drop", 0.1)
    for n in cl["nodes"].nodes:
        assert_deleted_on(n, ranges)
    assert_recreated_empty(r, "d1")


def test_drop_waits_for_a_down_node(cl):
    etcd, r = cl["etcd"], cl["r"]
    ranges = create_and_fill(cl, "d2")
    down = cl["nodes"].node(3)
    down.kill()
    assert r.execute_command("TABLE.DROP", "d2") == b"OK"
    up = cl["nodes"].nodes[:2]
    wait_for(lambda: all(not (hosted(n) & ranges) for n in up), 30,
             "the live nodes to delete their replicas", 0.1)
    # Node 3 may still hold its replica: the metadata must stay, through
    # several controller passes (200 ms each).
    wait_for(lambda: "not yet deleted on node 3" in
             open(cl["ctl_log"], errors="replace").read(), 45,
             "the controller to retry node 3", 0.1)  # logs every 30 s
    assert etcd.get(b"/cairn/tables/d2") is not None
    assert range_ids(etcd) >= ranges
    down.start()  # reopens its replicas, then is asked to delete them
    wait_for(lambda: metadata_gone(etcd, "d2", ranges), 30,
             "the drop to finish once node 3 is back", 0.1)
    for n in cl["nodes"].nodes:
        assert_deleted_on(n, ranges)
    assert_recreated_empty(r, "d2")
