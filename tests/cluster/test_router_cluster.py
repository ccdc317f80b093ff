"""The router with real nodes: real etcd, three real `cairn node` processes
(Raft per range), a real `cairn router`, and redis-py.

The nodes register themselves in etcd (`--etcd`: node record, lease-backed
liveness key, leader records), so the router's TABLE.CREATE places and
creates replicas through the node admin RPC, then everything goes through
the router: table lifecycle, put/get/delete, scans over a pre-split
table with concurrent writers, a leadership transfer behind the router's
back, kill -9 of a leader under write load, and redis-benchmark.
"""
import threading
import time

import pytest
import redis

from cairn_rpc import Client
from clusterharness import (Etcd, Procs, Router, Workdir, real_nodes,
                            redis_benchmark, wait_for, wait_live)


@pytest.fixture(scope="module")
def cl():
    procs, wd = Procs(), Workdir()
    nodes = None
    try:
        etcd = Etcd(wd.path, procs).start()
        nodes = real_nodes(etcd, 3)
        state = {"etcd": etcd, "nodes": nodes, "procs": procs, "dir": wd.path,
                 "router": Router(procs, wd.path, etcd.url)}
        yield state
        state["router"].stop()
    finally:
        if nodes:
            nodes.close()
        procs.stop_all()
        wd.cleanup()


@pytest.fixture
def r(cl):
    c = cl["router"].client()
    yield c
    c.close()


def ranges_of(r, table):
    info = r.execute_command("TABLE.INFO", table)
    d = dict(zip(info[0::2], info[1::2]))
    return [dict(zip(g[0::2], g[1::2])) for g in d[b"ranges"]]


def test_lifecycle_and_put_get_delete(r):
    assert r.execute_command("TABLE.CREATE", "t1", "REPLICAS", "3") == b"OK"
    assert b"t1" in r.execute_command("TABLE.LIST")
    s1 = r.execute_command("KV.PUT", "t1", "k", "v1")
    assert len(s1) == 32
    assert r.execute_command("KV.GET", "t1", "k", "WITHSEQ") == [b"v1", s1]
    with pytest.raises(redis.ResponseError, match="^CONDITION"):
        r.execute_command("KV.PUT", "t1", "k", "v2", "IFABSENT")
    s2 = r.execute_command("KV.PUT", "t1", "k", "v2", "IFSEQ", s1)
    assert s2 > s1
    assert r.execute_command("KV.DEL", "t1", "k") == 1
    assert r.execute_command("KV.DEL", "t1", "k") == 0
    assert r.execute_command("KV.DEL", "t1", "never") == 0
    assert r.execute_command("KV.GET", "t1", "k") is None
    assert r.execute_command("TABLE.CREATE", "lsm1", "ENGINE", "lsm") == b"OK"
    r.execute_command("KV.PUT", "lsm1", "a", "b")
    assert r.execute_command("KV.GET", "lsm1", "a") == b"b"
    assert r.execute_command("TABLE.DROP", "lsm1") == b"OK"
    with pytest.raises(redis.ResponseError, match="^NOTABLE"):
        r.execute_command("KV.GET", "lsm1", "a")
    with pytest.raises(redis.ResponseError, match="^TOOBIG"):
        r.execute_command("KV.PUT", "t1", "k", b"x" * (1024 * 1024 + 1))
    assert r.ping()


def test_scan_pre_split_with_writers(cl, r):
    r.execute_command("TABLE.CREATE", "sc", "SPLITS", "k025", "k050", "k075")
    assert len(ranges_of(r, "sc")) == 4
    keys = [b"k%03d" % i for i in range(100)]
    p = r.pipeline(transaction=False)
    for k in keys:
        p.execute_command("KV.PUT", "sc", k, b"v" + k)
    p.execute()
    stop = threading.Event()

    def writer():
        w = cl["router"].client()
        i = 0
        while not stop.is_set():
            w.execute_command("KV.PUT", "sc", keys[i % 100], b"v" + keys[i % 100])
            w.execute_command("KV.PUT", "sc", b"new%05d" % i, b"n")
            i += 1
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        cursor, seen = b"", []
        while True:
            args = ["KV.SCAN", "sc", "k", "l", "LIMIT", 9]
            if cursor:
                args += ["CURSOR", cursor]
            cursor, flat = r.execute_command(*args)
            seen += flat[0::2]
            if not cursor:
                break
    finally:
        stop.set()
        t.join(20)
    assert seen == keys


def test_leadership_transfer_behind_the_routers_back(cl, r):
    r.execute_command("TABLE.CREATE", "lt")
    rid = ranges_of(r, "lt")[0][b"id"]
    nodes = cl["nodes"]
    for i in range(30):
        r.execute_command("KV.PUT", "lt", "k%d" % i, "v%d" % i)
    for _ in range(3):
        old = nodes.wait_leader(rid)
        with old.client() as c:
            c.transfer_leader(rid, 0)
        wait_for(lambda: (nodes.leader(rid) not in (None, old)), 15,
                 "leadership to move")
        for i in range(30):
            assert r.execute_command("KV.GET", "lt", "k%d" % i) == b"v%d" % i
            r.execute_command("KV.PUT", "lt", "k%d" % i, "v%d" % i)


def test_kill_leader_under_write_load(cl, r):
    r.execute_command("TABLE.CREATE", "kl")
    rid = ranges_of(r, "kl")[0][b"id"]
    nodes = cl["nodes"]
    leader = nodes.wait_leader(rid)
    acked, errors = {}, []
    stop = threading.Event()

    def load(tag):
        w = cl["router"].client()
        i = 0
        while not stop.is_set():
            k = "%s-%d" % (tag, i)
            try:
                w.execute_command("KV.PUT", "kl", k, k)
                acked[k] = True
            except redis.ResponseError as e:
                errors.append(str(e))  # TRYAGAIN / TIMEOUT during the election
            i += 1
        w.close()

    threads = [threading.Thread(target=load, args=("w%d" % j,)) for j in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 200, 30, "writes before the kill")
        leader.kill()
        before = len(acked)
        wait_for(lambda: len(acked) >= before + 200, 30, "writes to resume")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert all(e.startswith(("TRYAGAIN", "TIMEOUT")) for e in errors), errors[:5]
    p = r.pipeline(transaction=False)
    ks = sorted(acked)
    for k in ks:
        p.execute_command("KV.GET", "kl", k)
    assert p.execute() == [k.encode() for k in ks]  # no acknowledged write lost
    leader.start()
    wait_live(cl["etcd"], 3)


def test_data_path_survives_etcd_restart(cl, r):
    r.execute_command("TABLE.CREATE", "et")
    r.execute_command("KV.PUT", "et", "before", "1")
    etcd = cl["etcd"]
    etcd.kill()
    try:
        # The router routes from its cache; the nodes do not need etcd.
        for i in range(20):
            r.execute_command("KV.PUT", "et", "during%d" % i, str(i))
        assert r.execute_command("KV.GET", "et", "before") == b"1"
        assert r.execute_command("KV.GET", "et", "during7") == b"7"
    finally:
        etcd.start()
    # The watch reconnects: a table made through another path is seen.
    other = Router(cl["procs"], cl["dir"], etcd.url, name="router-b")
    o = other.client()
    assert o.execute_command("TABLE.CREATE", "et2") == b"OK"
    wait_for(lambda: b"et2" in r.execute_command("TABLE.LIST"), 15,
             "the first router to see et2")
    r.execute_command("KV.PUT", "et2", "k", "v")
    assert o.execute_command("KV.GET", "et2", "k") == b"v"
    o.close()
    other.stop()


def test_router_restart_loses_nothing(cl, r):
    r.execute_command("TABLE.CREATE", "rr")
    for i in range(50):
        r.execute_command("KV.PUT", "rr", "k%02d" % i, "v%02d" % i)
    cl["router"].stop()
    cl["router"] = Router(cl["procs"], cl["dir"], cl["etcd"].url, name="router2")
    c = cl["router"].client()
    cursor, flat = c.execute_command("KV.SCAN", "rr", "", "", "LIMIT", 100)
    assert cursor == b""
    assert flat[0::2] == [b"k%02d" % i for i in range(50)]
    assert flat[1::2] == [b"v%02d" % i for i in range(50)]
    c.close()


def test_redis_benchmark(cl):
    r = cl["router"].client()
    try:
        r.execute_command("TABLE.CREATE", "default")
    except redis.ResponseError as e:
        assert str(e).startswith("EXISTS")
    redis_benchmark(cl["router"].port)
    assert r.mset({"m1": "1", "m2": "2"}) is True
    assert r.mget("m1", "m2", "m3") == [b"1", b"2", None]
    assert r.exists("m1", "m2", "m3") == 2
    assert r.delete("m1", "m2", "m3") == 2
    assert r.delete("m1") == 0
