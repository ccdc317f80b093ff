"""Many ranges on one node-wide log (issue 8): real etcd, three real
`cairn node`s, a real router, redis-py.

- kill -9 of a node while writers spread over a 1,000-range table: no
  acknowledged write is lost, and the node serves again after a restart;
- idle ranges go to sleep (no ticks, no heartbeats), and a request wakes
  one: it answers at once;
- a sleeping leader paused (SIGSTOP) while the others elect a new one
  refuses reads and writes when it resumes - sleeping does not weaken the
  fencing of a deposed leader.
"""
import random
import threading
import time

import pytest
import redis

from cairn_rpc import Client, RpcError
from clusterharness import real_cluster, wait_for


@pytest.fixture(scope="module")
def cl():
    with real_cluster() as c:
        yield c


def awake(node):
    return node.metrics(0)["replication"]["ranges_awake"]


class Writers:
    """Threads putting unique keys through the router; `acked` maps every
    acknowledged key to its value."""

    def __init__(self, port, table, keys, threads=6):
        self.port, self.table, self.keys = port, table, keys
        self.acked, self.lock = {}, threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(t,),
                                         daemon=True) for t in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, tid):
        r = redis.Redis(port=self.port, socket_timeout=20)
        rnd, i = random.Random(tid), 0
        while not self.stop_ev.is_set():
            key = "%s-%d-%d" % (rnd.choice(self.keys), tid, i)
            val = "v-%d-%d" % (tid, i)
            i += 1
            try:
                r.execute_command("KV.PUT", self.table, key, val)
            except (redis.ResponseError, redis.ConnectionError,
                    redis.TimeoutError):
                continue  # TRYAGAIN (never applied) or TIMEOUT (unknown)
            with self.lock:
                self.acked[key] = val

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_more(self, n, timeout=30):
        base = self.count()
        wait_for(lambda: self.count() >= base + n, timeout,
                 "%d more acknowledged writes" % n)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)


def test_kill_a_node_mid_load_over_1000_ranges(cl):
    r = redis.Redis(port=cl["router"].port, socket_timeout=60)
    splits = ["k%04d" % i for i in range(1, 1000)]
    assert r.execute_command("TABLE.CREATE", "many", "REPLICAS", "3",
                             "SPLITS", *splits) == b"OK"
    w = Writers(cl["router"].port, "many", ["k%04d" % i for i in range(1000)])
    victim = cl["nodes"].node(2)
    try:
        w.wait_more(300)
        victim.kill()
        w.wait_more(300)
        victim.start()
        wait_for(lambda: all(rg["leader"] != 0 for rg in
                             victim.metrics(0)["ranges"]), 30,
                 "the restarted node to know every range's leader")
        w.wait_more(300)
    finally:
        w.stop()
    acked = dict(w.acked)
    assert len(acked) >= 900
    lost = []
    for key, val in acked.items():
        got = r.execute_command("KV.GET", "many", key)
        if got != val.encode():
            lost.append((key, val, got))
    assert not lost, lost[:10]
    assert len(victim.metrics(0)["ranges"]) >= 1000
    for nd in cl["nodes"].nodes:
        assert "Sanitizer" not in nd.tail(100000), nd.tail()


def test_idle_ranges_sleep_and_a_request_wakes_one(cl):
    r = redis.Redis(port=cl["router"].port, socket_timeout=20)
    assert r.execute_command("TABLE.CREATE", "idle", "REPLICAS", "3",
                             "SPLITS", "g", "p") == b"OK"
    r.execute_command("KV.PUT", "idle", "a", "1")
    wait_for(lambda: all(awake(n) == 0 for n in cl["nodes"].nodes), 60,
             "every range of every node to sleep", 0.2)
    sleeps = [n.metrics(0)["replication"]["sleeps"]
              for n in cl["nodes"].nodes]
    t0 = time.monotonic()
    seq = r.execute_command("KV.PUT", "idle", "b", "2")  # its sequencer
    assert isinstance(seq, bytes) and len(seq) == 32, seq
    assert r.execute_command("KV.GET", "idle", "a") == b"1"
    assert time.monotonic() - t0 < 2.0
    # and it goes back to sleep, once: no wake/sleep churn
    wait_for(lambda: all(awake(n) == 0 for n in cl["nodes"].nodes), 30,
             "the range to sleep again", 0.2)
    after = [n.metrics(0)["replication"]["sleeps"]
             for n in cl["nodes"].nodes]
    assert all(b - a <= 3 for a, b in zip(sleeps, after)), (sleeps, after)


def test_sleeping_leader_paused_then_resumed_is_refused(cl):
    r = redis.Redis(port=cl["router"].port, socket_timeout=20)
    assert r.execute_command("TABLE.CREATE", "fence", "REPLICAS", "3") \
        == b"OK"
    r.execute_command("KV.PUT", "fence", "k", "old")
    nodes = cl["nodes"].nodes
    wait_for(lambda: all(awake(n) == 0 for n in nodes), 60,
             "the range to sleep", 0.2)

    def fence_range(n):
        ids = {rg["range"]: rg for rg in n.metrics(0)["ranges"]}
        return ids
    # the range is the newest one: the highest id
    rid = max(fence_range(nodes[0]))
    old = next(n for n in nodes if fence_range(n)[rid]["role"] == "leader")
    epoch = fence_range(old)[rid]["epoch"]
    old.pause()
    try:
        rest = [n for n in nodes if n is not old]
        # the others notice the paused node is silent, wake, and elect
        new = wait_for(lambda: next((n for n in rest if fence_range(n)[rid]
                                     ["role"] == "leader"), None), 30,
                       "a new leader among the others")
        with new.client() as c:
            wait_for(lambda: c.put(rid, epoch, b"k", b"new"), 10,
                     "a write on the new leader")
        stale = Client(old.addr, timeout=10)
    finally:
        old.resume()
    with stale:
        try:
            got = stale.get(rid, epoch, b"k")
            assert got[0] == b"new", "stale read from a deposed leader"
        except RpcError as e:
            assert e.word in ("NOT_LEADER", "NOQUORUM", "TRYAGAIN")
        with pytest.raises(RpcError) as e:
            stale.put(rid, epoch, b"k", b"stale-write")
        assert e.value.word in ("NOT_LEADER", "NOQUORUM", "TIMEOUT")
    assert r.execute_command("KV.GET", "fence", "k") == b"new"
