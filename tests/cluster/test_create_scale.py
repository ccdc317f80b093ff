"""Table create at scale (issue 8): real etcd, real `cairn node` processes,
a real router, redis-py.

- A node takes many replica creations in one CREATE_REPLICAS frame and
  answers with the ones that failed, each with its own reason.
- TABLE.CREATE with the documented limit of 1,024 split keys works end to
  end (several etcd transactions under the CREATING marker, one batched
  RPC per node, leaders recorded in batches) and the table serves keys in
  its first, a middle and its last range; 1,025 split keys are refused
  with the limit in the message.
- An error that is still returned names its real cause: a node that
  cannot be reached, with its id and address.

Today each replica's libraft makes its own log files, which costs ~35 ms
per replica on the node, so the 1,024-split create takes ~40 s on a 2-core
machine (the goal, < 10 s, needs the node-wide Raft log of issue 8); the
test allows 120 s and prints the time it took.
"""
import base64
import json
import time

import pytest
import redis

from cairn_rpc import BTREE, Client
from clusterharness import Etcd, Procs, Router, Workdir, real_nodes, wait_for
from harness import free_port
from nodeharness import Cluster

CREATE_DEADLINE_S = 120


def _b64(s):
    return base64.b64encode(s.encode()).decode()


def test_node_creates_replicas_in_one_frame():
    """One CREATE_REPLICAS frame per node creates 60 ranges there; a range
    given twice is created once (EXISTS), an invalid creation is refused
    alone with a reason; every created range elects a leader and serves;
    sending the same frame again is idempotent (all EXISTS)."""
    with Cluster(3) as cl:
        peers = [(n.id, n.addr) for n in cl.nodes]
        ranges = list(range(1, 61))
        frame = [Client.creation(r, peers, start=b"" if r == 1 else b"k%03d" % r,
                                 end=b"" if r == 60 else b"k%03d" % (r + 1))
                 for r in ranges]
        frame.append(Client.creation(7, peers))          # again
        frame.append(Client.creation(99, peers, engine=9))  # no such engine
        for n in cl.nodes:
            with n.client(timeout=120) as c:
                failed = c.create_replicas(frame)
            assert sorted((r, w) for r, w, _ in failed) == \
                [(7, "EXISTS"), (99, "INVALID")], failed
            assert "99" in dict((r, m) for r, _, m in failed)[99]
        for r in ranges:
            wait_for(lambda: cl.leader(r), 30, "a leader of range %d" % r)
        ld = cl.leader(42)
        with ld.client() as c:
            c.put(42, 1, b"k042x", b"v")
            assert c.get(42, 1, b"k042x")[0] == b"v"
        with cl.nodes[0].client(timeout=120) as c:
            again = c.create_replicas(frame[:60])
        assert sorted(w for _, w, _ in again) == ["EXISTS"] * 60


@pytest.fixture(scope="module")
def cl():
    procs, wd = Procs(), Workdir()
    nodes = None
    try:
        etcd = Etcd(wd.path, procs).start()
        nodes = real_nodes(etcd, 3)
        router = Router(procs, wd.path, etcd.url)
        yield {"etcd": etcd, "nodes": nodes, "router": router,
               "dir": wd.path, "procs": procs}
        router.stop()
    finally:
        if nodes:
            nodes.close()
        procs.stop_all()
        wd.cleanup()


def split_keys(n):
    return [b"k%05d" % (i * 10) for i in range(1, n + 1)]


def test_split_limit_is_exact(cl):
    """1,025 split keys: refused with the limit in the message, nothing
    created."""
    r = redis.Redis(port=cl["router"].port, socket_timeout=30)
    with pytest.raises(redis.ResponseError, match="^INVALID .*1024"):
        r.execute_command("TABLE.CREATE", "toomany", "SPLITS",
                          *split_keys(1025))
    assert b"toomany" not in r.execute_command("TABLE.LIST")
    assert cl["etcd"].range("/cairn/tables/toomany") == {}


def test_create_1024_splits(cl):
    """The documented limit: 1,024 split keys, 1,025 ranges x 3 replicas on
    3 nodes, created through the router; then a key is written and read
    in the first, a middle and the last range."""
    r = redis.Redis(port=cl["router"].port, socket_timeout=CREATE_DEADLINE_S)
    splits = split_keys(1024)
    t0 = time.monotonic()
    assert r.execute_command("TABLE.CREATE", "big", "REPLICAS", "3",
                             "SPLITS", *splits) == b"OK"
    took = time.monotonic() - t0
    print("TABLE.CREATE with 1,024 splits: %.1f s" % took)
    assert took < CREATE_DEADLINE_S
    info = r.execute_command("TABLE.INFO", "big")
    d = dict(zip(info[0::2], info[1::2]))
    assert d[b"state"] == b"ready"
    assert len(d[b"ranges"]) == 1025
    ranges = [json.loads(v) for v in
              cl["etcd"].range("/cairn/ranges/", prefix=True).values()]
    assert len(ranges) == 1025
    wait_for(lambda: len(cl["etcd"].range("/cairn/leaders/", prefix=True))
             >= 1025, 30, "a leader record of every range")
    # first range [-inf, k00010), a middle one, the last [k10240, +inf)
    for key in (b"a", b"k05125", b"zzz"):
        r.execute_command("KV.PUT", "big", key, b"v-" + key)
    for key in (b"a", b"k05125", b"zzz"):
        assert r.execute_command("KV.GET", "big", key) == b"v-" + key


def leader_records(etcd, lo, hi):
    """{range id: (node, term, mod revision)} of leader records lo..hi."""
    body = {"key": _b64("/cairn/leaders/%016x" % lo),
            "range_end": _b64("/cairn/leaders/%016x" % (hi + 1))}
    out = {}
    for kv in etcd.call("/v3/kv/range", body).get("kvs", []):
        rng = int(base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1], 16)
        v = json.loads(base64.b64decode(kv["value"]))
        out[rng] = (v["node"], v["term"], int(kv["mod_revision"]))
    return out


def test_leader_records_are_batched(cl):
    """200 new ranges led by the nodes: each node records its new
    leaderships in a few etcd transactions (many records per revision),
    not one transaction per range; every record names the node that
    leads the range, in its current term."""
    nodes, etcd = cl["nodes"], cl["etcd"]
    lo, n = 500001, 200
    peers = [(nd.id, nd.addr) for nd in nodes.nodes]
    frame = [Client.creation(lo + i, peers) for i in range(n)]
    for nd in nodes.nodes:
        with nd.client(timeout=120) as c:
            assert c.create_replicas(frame) == []
    recs = wait_for(lambda: (lambda m: m if len(m) == n else None)(
        leader_records(etcd, lo, lo + n - 1)), 60, "200 leader records")
    for rng in (lo, lo + n // 2, lo + n - 1):
        ld = nodes.leader(rng)
        assert ld is not None
        node, term, _ = recs[rng]
        if node == ld.id:  # (a leader may have changed since: then newer)
            assert term == ld.metrics(rng)["term"]
    revisions = {rev for _, _, rev in recs.values()}
    print("200 leader records in %d etcd revisions" % len(revisions))
    assert len(revisions) < n // 2, len(revisions)


def test_unreachable_node_named_in_the_error(cl):
    """The only live node (under a prefix of its own) has an address
    nothing listens on: the create fails naming that node and its
    address, and is rolled back (the name is free again)."""
    etcd, prefix, dead = cl["etcd"], "/deadnode", 7
    addr = "127.0.0.1:%d" % free_port()
    etcd.put("%s/nodes/%016x" % (prefix, dead),
             json.dumps({"addr": addr, "capacity": 1 << 40}))
    etcd.put("%s/live/%016x" % (prefix, dead), "")
    router = Router(cl["procs"], cl["dir"], etcd.url, prefix=prefix,
                    name="router-deadnode")
    r = redis.Redis(port=router.port, socket_timeout=60)
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("TABLE.CREATE", "nowhere", "REPLICAS", "1")
    msg = str(e.value)
    assert msg.startswith("TRYAGAIN"), msg
    assert ("node %d (%s)" % (dead, addr)) in msg, msg
    assert "unreachable" in msg, msg
    wait_for(lambda: etcd.range("%s/tables/nowhere" % prefix) == {}, 10,
             "the failed create to be rolled back")
    router.stop()
