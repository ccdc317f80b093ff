"""The router does not wait out its deadline on a hung leader (issue 11,
"Failover"; src/router/op.c abandon_stale): real etcd, three real `cairn
node`s, a real router with a 60 s deadline, redis-py.

The range's leader is paused (SIGSTOP) and a read and a write are sent
through the router at once, so that both go to the paused node. The other
two elect a leader, which records itself in etcd; the router's view
follows, and then - with the old leader still paused, far inside the
deadline - the read must be answered by the new leader with the current
value, and the write must end TIMEOUT (it was sent: outcome unknown).
Without the abandonment both would hang until the node resumes or the
60 s pass.
"""
import threading

import pytest
import redis

from clusterharness import real_cluster, wait_for

DEADLINE_MS = 60000


@pytest.fixture(scope="module")
def cl():
    with real_cluster(deadline_ms=DEADLINE_MS) as c:
        yield c


def ranges_of(node):
    return {rg["range"]: rg for rg in node.metrics(0)["ranges"]}


def stopped(node):
    """Whether the node's process is stopped (SIGSTOP), from /proc."""
    with open("/proc/%d/stat" % node.proc.pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


class Call(threading.Thread):
    """One command on its own connection; `result` is the reply or the
    error's code word."""

    def __init__(self, port, *args):
        super().__init__(daemon=True)
        self.port, self.args, self.result = port, args, None
        self.start()

    def run(self):
        r = redis.Redis(port=self.port, socket_timeout=DEADLINE_MS / 1000 + 10)
        try:
            self.result = r.execute_command(*self.args)
        except redis.ResponseError as e:
            self.result = str(e).split()[0]


def test_requests_at_a_paused_leader_go_to_its_successor(cl):
    port, nodes = cl["router"].port, cl["nodes"].nodes
    r = redis.Redis(port=port, socket_timeout=20)
    assert r.execute_command("TABLE.CREATE", "fo", "REPLICAS", "3") == b"OK"
    assert r.execute_command("KV.PUT", "fo", "k", "v1")  # its sequencer
    rid = max(ranges_of(nodes[0]))
    old = wait_for(lambda: next((n for n in nodes if ranges_of(n).get(
        rid, {}).get("role") == "leader"), None), 30, "a leader")
    # The router knows the leader (the put went there): both calls below
    # are sent to it.
    old.pause()
    try:
        read = Call(port, "KV.GET", "fo", "k")
        write = Call(port, "KV.PUT", "fo", "k2", "w")
        read.join(40)
        write.join(40)
        assert stopped(old), "the old leader must still be paused"
        assert not read.is_alive(), "the read still waits on the paused node"
        assert not write.is_alive(), "the write still waits on the paused node"
    finally:
        old.resume()
    assert read.result == b"v1", read.result
    assert write.result == "TIMEOUT", write.result
    # TIMEOUT means unknown: the write was taken or not, never half.
    assert r.execute_command("KV.GET", "fo", "k2") in (b"w", None)
    assert r.execute_command("KV.PUT", "fo", "k", "v2")
    assert r.execute_command("KV.GET", "fo", "k") == b"v2"
