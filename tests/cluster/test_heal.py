"""The self-healing control plane (issue 9) against real processes: real
etcd, nodes, router and controllers; faults are kill -9 and SIGSTOP.

Thresholds are short (healharness.CTL_ARGS: node leases of 2 s, dead after
2 s more, a poll every 0.5 s) so that each test takes seconds; every wait
has a deadline; every acknowledged write is read back at the end.
"""
import time

import pytest

from harness import wait_for
from healharness import Heal, Writer


def make_table(h, name="t", splits=9, replicas=3):
    r = h.client()
    keys = ["w%d" % i for i in range(1, splits + 1)] if splits else []
    args = ["TABLE.CREATE", name, "REPLICAS", replicas]
    if keys:
        args += ["SPLITS"] + sorted(keys)
    assert r.execute_command(*args) == b"OK"
    return r


def test_dead_node_replaced_under_writes():
    """4 nodes, RF 3, writes running: kill -9 a node for good. Every range
    is back to 3 replicas on live nodes soon after the node is declared
    dead, writes keep succeeding, and every acknowledged write reads."""
    h = Heal(4)
    try:
        r = make_table(h)
        w = Writer(h.router.port).start()
        w.wait_more(200)
        victim = h.nodes.nodes[1]
        held = [rid for rid, rg in h.ranges().items()
                if victim.id in rg["replicas"]]
        assert held
        victim.kill()
        t0 = time.monotonic()
        wait_for(lambda: h.state_of(victim.id) == "dead", 20,
                 "node %d declared dead" % victim.id, 0.1)
        t_dead = time.monotonic()
        live = [n.id for n in h.nodes.nodes if n is not victim]
        wait_for(lambda: h.replicated(live, 3), 30,
                 "every range back to 3 live replicas", 0.1)
        t_done = time.monotonic()
        print("dead after %.1f s; %d ranges re-replicated %.1f s later" %
              (t_dead - t0, len(held), t_done - t_dead))
        assert t_done - t_dead < 30
        w.wait_more(200)
        w.stop()
        # the replicas agree with etcd, at etcd's epoch
        for rid, rg in h.ranges().items():
            for nid in rg["replicas"]:
                m = h.nodes.node(nid).metrics(rid)
                assert m["epoch"] <= rg["epoch"], (rid, nid, m["epoch"], rg)
        assert w.check(r) > 400
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
    finally:
        h.close()
