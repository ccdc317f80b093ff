"""A node whose disk fills up refuses writes with NOSPACE, loses nothing,
keeps its peers writing, and takes writes again by itself once space
returns (issue 13's full disk; src/common/diskguard.h). Needs root: node 1's
data directory is a 256 MiB tmpfs of our own (cluster.py).

The disk is filled at once by another process (a filler file), as a log
or a neighbour would; the node must notice before its next write - the
stores abort or diverge on ENOSPC - release its reserve file for what it
already accepted, and from then on:
  * as a leader: answer NOSPACE (nothing written) to every write;
  * as a follower: take no new log entries - its peers still commit;
  * serve reads;
  * never exit.
Once the filler is gone it leaves the full state within seconds, without
a restart, catches up as a follower and takes writes as a leader.
"""
import os
import sys

import pytest
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cluster import Cluster  # noqa: E402
from cairn_rpc import Client, RpcError  # noqa: E402
from harness import wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (tmpfs, users)")

FOLLOWER_WRITES, BIG = 48, 512 << 10   # 24 MiB, twice node 1's reserve


@pytest.fixture(scope="module")
def cl():
    c = Cluster(n_nodes=3, n_routers=1, tmpfs_node=1, keep=bool(
        os.environ.get("CAIRN_KEEP_TMP")))
    try:
        yield c.start()
    finally:
        c.close()


def disk(nd):
    return nd.metrics(0)["replication"]


def ranges_of(nd):
    return {rg["range"]: rg for rg in nd.metrics(0)["ranges"]}


def put(r, table, key, value):
    """'ok', or the error's code word."""
    try:
        r.execute_command("KV.PUT", table, key, value)
        return "ok"
    except redis.ResponseError as e:
        return str(e).split()[0]


@pytest.mark.parametrize("engine", ["btree", "lsm"])
def test_a_full_disk_refuses_writes_and_recovers_by_itself(cl, engine):
    r = redis.Redis(port=cl.routers[0].port, socket_timeout=20)
    wait_for(lambda: r.execute_command("PING"), 30, "the router", 0.2)
    TABLE = "full-" + engine
    assert r.execute_command("TABLE.CREATE", TABLE, "ENGINE", engine,
                             "REPLICAS", "3") == b"OK"
    full, n2 = cl.nodes[0], cl.nodes[1]
    assert full.tmpfs and not disk(full)["disk_full"]
    acked = {}
    for i in range(200):
        assert put(r, TABLE, "k%03d" % i, "v%d" % i) == "ok"
        acked["k%03d" % i] = "v%d" % i
    rid = max(ranges_of(full))
    epoch = ranges_of(full)[rid]["epoch"]

    assert cl.transfer_leader(rid, full), "node 1 could not be made leader"
    filled = cl.fill_disk()
    assert filled > 0
    wait_for(lambda: disk(full)["disk_full"], 10, "node 1 to see its disk full")
    assert disk(full)["disk_times_full"] >= 1

    # As the leader: NOSPACE, nothing written (asked directly: the
    # controller may move the leadership away meanwhile).
    refused = []

    def refused_once():
        with Client(full.addr, timeout=5) as c:
            try:
                c.put(rid, epoch, b"refused-%d" % len(refused), b"x")
                raise AssertionError("a write on a full disk was taken")
            except RpcError as e:
                if e.word == "NOT_LEADER":
                    cl.transfer_leader(rid, full, deadline_s=3)
                    return False
                assert e.word == "NOSPACE", e.word
                refused.append(b"refused-%d" % len(refused))
                return len(refused) >= 3
    wait_for(refused_once, 30, "three writes refused with NOSPACE", 0.1)
    for k, v in acked.items():           # reads still served
        assert r.execute_command("KV.GET", TABLE, k) == v.encode()

    # As a follower: the two others still commit - more than the released
    # reserve could hold, so a follower that took them would run out.
    assert cl.transfer_leader(rid, n2), "node 2 could not be made leader"
    for i in range(FOLLOWER_WRITES):
        k, v = "f%03d" % i, "w%d-" % i + "x" * BIG
        assert wait_for(lambda: put(r, TABLE, k, v) == "ok", 20,
                        "a write while node 1's disk is full")
        acked[k] = v
    assert full.alive() and disk(full)["disk_full"]

    cl.free_disk()
    wait_for(lambda: not disk(full)["disk_full"], 15,
             "node 1 to take its reserve back")
    leader_applied = ranges_of(n2)[rid]["applied_index"]
    wait_for(lambda: ranges_of(full)[rid]["applied_index"] >= leader_applied, 20,
             "node 1 to catch up")
    assert cl.transfer_leader(rid, full), "node 1 could not lead again"
    with Client(full.addr, timeout=5) as c:
        wait_for(lambda: c.put(rid, epoch, b"after", b"room"), 10,
                 "a write on node 1 once its disk has room")
    acked["after"] = "room"

    assert full.alive(), "node 1 exited"
    for k, v in acked.items():
        assert wait_for(lambda: r.execute_command("KV.GET", TABLE, k), 10,
                        "key %s" % k) == v.encode()
    for k in refused:                      # NOSPACE: nothing was written
        assert r.execute_command("KV.GET", TABLE, k) is None
    assert not cl.check_crashes(restart=False)
    # A clean stop, too: the stores that met the full disk close cleanly.
    assert full.term() == 0, full.tail()
    full.start()
