"""Bytes flipped in a stopped node's files are found, never served, and the
replica is rebuilt from its peers (issue 13, "Corruption tests"; engine.h,
engine_verify; docs/OPERATIONS.md, "Corrupt data").

Each case writes acknowledged data through a router, stops one node
gracefully (its stores flush: the data sits in LMDB pages and SST blocks),
flips bytes in one of its files, restarts it and checks that
  * the node says CORRUPT in its log (and refuses the range: METRICS lists
    it under "corrupt", cairn_node_corrupt_replicas counts it);
  * no read - through the router, or on that node made leader after the
    rebuild - returns anything but the acknowledged value;
  * the controller rebuilds the replica on the same node (three nodes: no
    other one can take it), which then holds the same data as its peers;
  * writes keep succeeding throughout.
Needs root, as the rest of tests/faults (each node runs as its own user).
"""
import glob
import os
import sys
import time

import pytest
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cluster import Cluster, ProcessExited  # noqa: E402
from cairn_rpc import RpcError  # noqa: E402
from harness import wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (users)")

N_KEYS = 300
REBUILD_S = 60


@pytest.fixture(scope="module")
def cl():
    c = Cluster(n_nodes=3, n_routers=1, keep=bool(
        os.environ.get("CAIRN_KEEP_TMP")))
    try:
        yield c.start()
        status = c.stop()  # graceful: ASan's leak check runs at exit
        assert not c.sanitizer_reports(), c.sanitizer_reports()
        assert all(v == 0 for v in status.values()), status
    finally:
        c.close()


def router(cl):
    r = redis.Redis(port=cl.routers[0].port, socket_timeout=20)
    wait_for(lambda: r.execute_command("PING"), 30, "the router", 0.2)
    return r


def marker(table, i):
    """A value no other record holds, long enough to find in a file."""
    return ("MARK-%s-%04d-" % (table, i)).ljust(60, "x")


def write_keys(r, table, n, prefix="k"):
    acked = {}
    for i in range(n):
        k, v = "%s%04d" % (prefix, i), marker(table, i)
        r.execute_command("KV.PUT", table, k, v)
        acked[k] = v
    return acked


def check_reads(r, table, acked):
    """Every acknowledged value reads back exactly (a refused read is
    retried by the router; an error here fails the test)."""
    for k, v in acked.items():
        got = r.execute_command("KV.GET", table, k)
        assert got == v.encode(), \
            "%s: read %r, acknowledged %r" % (k, got, v)


def range_of(cl, table_ranges_before):
    """The range ids a node hosts now that it did not before."""
    now = {rg["range"] for rg in cl.nodes[0].metrics(0)["ranges"]}
    return sorted(now - table_ranges_before)


def flip_all(path, needle, at=8):
    """Flip one byte of every occurrence of `needle` in file `path` (LMDB
    keeps older copies of a page until reused: flip them all). Count."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        n, pos = 0, data.find(needle)
        while pos >= 0:
            data[pos + at] ^= 0x20
            n, pos = n + 1, data.find(needle, pos + 1)
        f.seek(0)
        f.write(data)
    return n


def flip_at(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x20]))


def log_has(nd, text, since=0):
    with open(nd.log, "rb") as f:
        f.seek(since)
        return text.encode() in f.read()


def log_size(nd):
    return os.path.getsize(nd.log)


def corrupt_listed(nd):
    try:
        return {c["range"] for c in nd.metrics(0).get("corrupt", [])}
    except (OSError, RpcError, ValueError):
        return set()


def holds_working(cl, nd, rid):
    """Node `nd` hosts range `rid`, not corrupt, caught up with the leader,
    with the same digest."""
    ld = cl.leader(rid)
    if ld is None or rid in corrupt_listed(nd):
        return False
    try:
        mine, theirs = nd.metrics(rid), ld.metrics(rid)
    except (OSError, RpcError, ValueError):
        return False
    return (mine.get("applied_index") == theirs.get("applied_index") and
            mine.get("digest") == theirs.get("digest"))


def expect_rebuild(cl, r, table, nd, rids, acked, waited, limit_s,
                   logged):
    """Writes go on until node `nd` holds every range in `waited` working
    again (within `limit_s`); then every acknowledged value reads back,
    the controller's log says `logged`, and `nd`, made leader of each of
    `rids`, serves exactly what was acked."""
    more, i = {}, 0
    deadline = time.monotonic() + limit_s
    while not all(holds_working(cl, nd, rid) for rid in waited):
        assert time.monotonic() < deadline, \
            "not rebuilt in %d s: %s" % (limit_s, nd.tail(1500))
        k, v = "during%04d" % i, marker(table + "-during", i)
        r.execute_command("KV.PUT", table, k, v)  # writes go on
        more[k] = v
        i += 1
        time.sleep(0.05)
    acked.update(more)
    check_reads(r, table, acked)
    with open(cl.ctl.log, "rb") as f:
        assert logged in f.read()
    for rid in rids:
        assert cl.transfer_leader(rid, nd), "cannot make node %d leader" % \
            nd.id
    check_reads(r, table, acked)


def restart_and_expect_rebuild(cl, r, table, nd, rids, acked, since):
    """Restart `nd`; it must report CORRUPT, keep serving nothing wrong,
    and get every range in `rids` rebuilt while writes go on."""
    nd.start()
    wait_for(lambda: log_has(nd, "CORRUPT", since), 30,
             "the node to report CORRUPT")
    expect_rebuild(cl, r, table, nd, rids, acked, rids, REBUILD_S,
                   b"rebuilding it")


def test_flipped_byte_in_a_stored_value_lmdb(cl):
    r = router(cl)
    before = {rg["range"] for rg in cl.nodes[0].metrics(0)["ranges"]}
    table = "cv-btree"
    r.execute_command("TABLE.CREATE", table, "ENGINE", "btree", "REPLICAS",
                      "3")
    acked = write_keys(r, table, N_KEYS)
    rids = range_of(cl, before)
    nd = cl.nodes[2]
    wait_for(lambda: all(holds_working(cl, nd, rid) for rid in rids), 30,
             "node 3 caught up")
    if cl.leader(rids[0]) is nd:
        assert cl.transfer_leader(rids[0], cl.nodes[0])
    since = log_size(nd)
    assert nd.term() == 0
    needle = marker(table, 123).encode()
    assert flip_all(os.path.join(nd.dir, "lmdb", "data.mdb"), needle) >= 1
    restart_and_expect_rebuild(cl, r, table, nd, rids, acked, since)


def test_flipped_byte_in_an_sst_of_the_lsm_store(cl):
    r = router(cl)
    before = {rg["range"] for rg in cl.nodes[0].metrics(0)["ranges"]}
    table = "cv-lsm"
    r.execute_command("TABLE.CREATE", table, "ENGINE", "lsm", "REPLICAS",
                      "3")
    acked = write_keys(r, table, N_KEYS)
    rids = range_of(cl, before)
    nd = cl.nodes[2]
    wait_for(lambda: all(holds_working(cl, nd, rid) for rid in rids), 30,
             "node 3 caught up")
    since = log_size(nd)
    assert nd.term() == 0  # a clean stop flushes the memtable to an SST
    ssts = glob.glob(os.path.join(nd.dir, "rocks", "*.sst"))
    assert ssts, "no SST after a clean stop"
    for p in ssts:  # the first data block of each
        flip_at(p, 40)
    restart_and_expect_rebuild(cl, r, table, nd, rids, acked, since)


def test_flipped_bytes_in_the_raft_log(cl):
    """The node-wide Raft log holds every range's log, and the node reads
    it all at start: a block that fails its checksum stops the node from
    starting, saying CORRUPT. The operator moves its directory away
    (docs/OPERATIONS.md, "Corrupt data"); the node starts empty, and the
    controller rebuilds every replica it should hold, as missing."""
    r = router(cl)
    before = {rg["range"] for rg in cl.nodes[0].metrics(0)["ranges"]}
    table = "cv-log"
    r.execute_command("TABLE.CREATE", table, "ENGINE", "btree", "REPLICAS",
                      "3")
    acked = write_keys(r, table, N_KEYS)
    rids = range_of(cl, before)
    nd = cl.nodes[2]
    wait_for(lambda: all(holds_working(cl, nd, rid) for rid in rids), 30,
             "node 3 caught up")
    hosted = {rg["range"] for rg in nd.metrics(0)["ranges"]}
    since = log_size(nd)
    assert nd.term() == 0  # a clean stop flushes the log to an SST
    ssts = glob.glob(os.path.join(nd.dir, "raftlog", "*.sst"))
    assert ssts, "no SST in the Raft log after a clean stop"
    for p in ssts:
        flip_at(p, 40)
    with pytest.raises(ProcessExited):
        nd.start(timeout=30)
    assert log_has(nd, "CORRUPT: the Raft log fails its check", since), \
        nd.tail(1500)
    os.rename(nd.dir, nd.dir + ".corrupt")  # the operator's move
    os.makedirs(nd.dir)
    os.chown(nd.dir, nd.uid, nd.uid)
    nd.start()
    # + the controller's grace for a missing replica
    expect_rebuild(cl, r, table, nd, rids, acked, hosted, REBUILD_S + 30,
                   b"is missing: rebuilding it")
