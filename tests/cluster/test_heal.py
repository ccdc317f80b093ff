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
        h.wait_writes(w, 200)
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
        h.wait_writes(w, 200)
        w.stop()
        # the replicas agree with etcd, at etcd's epoch
        for rid, rg in h.ranges().items():
            for nid in rg["replicas"]:
                m = h.nodes.node(nid).metrics(rid)
                assert m["epoch"] <= rg["epoch"], (rid, nid, m["epoch"], rg)
        assert w.check(r) > 400
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
        st = status_json(h)
        node = [n for n in st["nodes"] if n["id"] == victim.id][0]
        assert node["state"] == "dead" and node["replicas"] == 0, node
        assert st["summary"]["dead"] == 1 and not st["moves"], st
        assert st["summary"]["under_replicated"] == 0, st["unhealthy"]
    finally:
        h.close()


def status_json(h):
    import json
    import subprocess
    from harness import cairn_bin
    out = subprocess.run([cairn_bin(), "status", "--etcd", h.etcd.url,
                          "--json"], capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def stale_replica_refuses(node, rng, epoch):
    """A request to `node`'s replica of `rng` is refused (never served)."""
    from cairn_rpc import RpcError
    with node.client(3) as c:
        try:
            c.get(rng, epoch, b"w0-000001")
        except RpcError as e:
            assert e.word in ("NOT_LEADER", "NOQUORUM", "RANGE_NOT_FOUND",
                              "TRYAGAIN"), e
            return True
    raise AssertionError("the removed replica of range %d served a read"
                         % rng)


def test_lagging_follower_replaced_then_cleaned_up():
    """A follower held back with SIGSTOP past the lag threshold is replaced
    (long before it could be declared dead); after SIGCONT its stale
    replicas refuse every request and are dropped."""
    h = Heal(4, ctl_args=["--lag-seconds", "1", "--dead-after", "120"])
    try:
        r = make_table(h, splits=1)
        w = Writer(h.router.port).start()
        h.wait_writes(w, 100)
        victim = h.nodes.nodes[2]
        held = {rid for rid, rg in h.ranges().items()
                if victim.id in rg["replicas"]}
        assert held
        victim.pause()
        live = [n.id for n in h.nodes.nodes if n is not victim]
        wait_for(lambda: h.replicated(live, 3), 40,
                 "the stopped follower's replicas replaced", 0.1)
        assert h.state_of(victim.id) != "dead"
        log = h.controller_log()
        assert "lagging: adding node" in log, log[-3000:]
        h.wait_writes(w, 100)
        victim.resume()
        epochs = {rid: rg["epoch"] for rid, rg in h.ranges().items()}
        for rid in held:
            try:
                stale_replica_refuses(victim, rid, epochs[rid])
            except OSError:
                pass
        wait_for(lambda: not ({m["range"] for m in
                               victim.metrics(0)["ranges"]} & held), 30,
                 "the stale replicas dropped", 0.2)
        w.stop()
        assert w.check(r) > 200
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
    finally:
        h.close()


def test_lagging_follower_is_first_given_a_snapshot():
    """A follower down past --lag-entries is first given a snapshot by its
    leader (CATCH_UP), not fed the log entry by entry: once it runs again
    it installs that snapshot and catches up, and it is not replaced (it
    caught up within --lag-seconds)."""
    h = Heal(3, ctl_args=["--lag-entries", "300", "--lag-seconds", "60",
                          "--dead-after", "120"])
    try:
        r = make_table(h, splits=0)
        w = Writer(h.router.port).start()
        h.wait_writes(w, 50)
        (rid, rg), = h.ranges().items()
        lead = h.nodes.node(h.leaders()[rid])
        victim = next(n for n in h.nodes.nodes if n is not lead)
        # killed, not stopped: a stopped follower would find the entries
        # it missed in its socket's buffer when it runs again
        victim.kill()
        wait_for(lambda: "follower on node %d lagging: giving it a snapshot"
                 % victim.id in h.controller_log(), 60,
                 "the controller to ask for a snapshot", 0.2)
        assert lead.metrics(rid)["catchups"] >= 1
        victim.start()
        h.wait_writes(w, 50)

        def caught_up():
            m = victim.metrics(rid)
            return (m["snapshots_installed"] >= 1 and
                    m["applied_index"] >= lead.metrics(rid)["commit_index"]
                    - 50)
        wait_for(caught_up, 30, "the follower to install the snapshot", 0.2)
        w.stop()
        assert h.ranges()[rid]["replicas"] == rg["replicas"]
        assert "lagging: adding node" not in h.controller_log()
        assert w.check(r) > 100
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
    finally:
        h.close()


def test_etcd_epoch_ahead_of_the_leader_is_moved_past():
    """Should etcd hold an epoch the replicas never applied, they refuse
    it (a replica serves only its current epoch) and the controller has
    the leader apply one above it (BUMP_EPOCH), then records that: writes
    go on, every acknowledged one reads back."""
    import json
    h = Heal(3)
    try:
        r = make_table(h, splits=0)
        w = Writer(h.router.port).start()
        h.wait_writes(w, 50)
        (key, val), = h.etcd.get_prefix(b"/cairn/ranges/").items()
        rec = json.loads(val)
        forced = rec["epoch"] + 5
        rec["epoch"] = forced
        h.etcd.put(key, json.dumps(rec).encode())
        wait_for(lambda: h.ranges()[rec["id"]]["epoch"] > forced, 30,
                 "etcd to record the leader's epoch past the forced one",
                 0.1)
        assert "ahead of its leader's: bumped" in h.controller_log()
        lead = h.nodes.node(h.leaders()[rec["id"]])
        assert lead.metrics(rec["id"])["epoch"] == \
            h.ranges()[rec["id"]]["epoch"]
        h.wait_writes(w, 100)
        w.stop()
        assert w.check(r) > 150
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
    finally:
        h.close()


def test_controller_killed_mid_replacement_is_finished_by_the_next():
    """The active controller dies right after a replacement's add (a test
    hook aborts it there); the standby takes over and finishes it."""
    h = Heal(4, controllers=0, ctl_args=["--max-moves", "1"])
    try:
        import os
        r = make_table(h, splits=3)
        os.environ["CAIRN_TEST_CRASH"] = "move-after-add"
        try:
            first = h.start_controller("c0")
        finally:
            del os.environ["CAIRN_TEST_CRASH"]
        h.ctls.append(first)
        wait_for(lambda: h.etcd.get(b"/cairn/controller") == b"c0", 10,
                 "c0 active")
        second = h.start_controller("c1")
        h.ctls.append(second)
        w = Writer(h.router.port).start()
        h.wait_writes(w, 100)
        victim = h.nodes.nodes[0]
        victim.kill()
        wait_for(lambda: first.poll() is not None, 30,
                 "c0 to die after its first add", 0.1)
        assert h.moves(), "c0 died mid-move: its intent stays in etcd"
        live = [n.id for n in h.nodes.nodes if n is not victim]
        wait_for(lambda: h.replicated(live, 3), 30,
                 "c1 to finish every replacement", 0.1)
        with open(second.log, errors="replace") as f:
            assert "resuming replace" in f.read()
        h.wait_writes(w, 50)
        w.stop()
        w.check(r)
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
        h.ctls.remove(first)  # aborted on purpose: its log has the abort
    finally:
        h.close()


def counts(h):
    rep, lead = {}, {}
    for rg in h.ranges().values():
        for n in rg["replicas"]:
            rep[n] = rep.get(n, 0) + 1
    for rid, n in h.leaders().items():
        lead[n] = lead.get(n, 0) + 1
    return rep, lead


def test_joining_node_receives_replicas_and_leaders():
    """A 4th node joins a 3-node cluster with 30 ranges: with no operator
    action it gets its share of replicas (counts within 10 %) and of
    leaders (within 1)."""
    h = Heal(3, ctl_args=["--rebalance-rate", "600"])
    try:
        r = make_table(h, splits=0)
        splits = ["k%02d" % i for i in range(1, 30)]
        assert r.execute_command("TABLE.CREATE", "u", "SPLITS",
                                 *splits) == b"OK"
        w = Writer(h.router.port, table="u").start()
        h.wait_writes(w, 50)
        nd = h.add_node()
        t0 = time.monotonic()

        def balanced():
            rep, lead = counts(h)
            if len(rep) < 4 or h.moves():
                return False
            mean = sum(rep.values()) / 4.0
            return (all(abs(v - mean) <= 0.1 * mean for v in rep.values())
                    and len(lead) == 4 and
                    max(lead.values()) - min(lead.values()) <= 1)
        wait_for(balanced, 90, "replicas and leaders balanced", 0.2)
        print("balanced onto node %d in %.1f s: %s" % (
            nd.id, time.monotonic() - t0, counts(h)))
        w.stop()
        w.check(r)
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
    finally:
        h.close()


def test_drain_under_load_then_stop_the_node():
    """`cairn admin drain` moves every replica and leader off a node under
    load with no client error; the node then stops with nothing
    under-replicated; undrain makes it usable again."""
    import subprocess
    from harness import cairn_bin
    h = Heal(4)
    try:
        r = make_table(h, splits=5)
        w = Writer(h.router.port).start()
        h.wait_writes(w, 100)
        victim = h.nodes.nodes[3]
        out = subprocess.run([cairn_bin(), "admin", "--etcd", h.etcd.url,
                              "drain", str(victim.id)], capture_output=True,
                             text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert "draining" in out.stdout
        again = subprocess.run([cairn_bin(), "admin", "--etcd", h.etcd.url,
                                "drain", str(victim.id)],
                               capture_output=True, text=True, timeout=20)
        assert again.returncode == 1 and "already" in again.stderr

        def drained():
            rep, lead = counts(h)
            return not rep.get(victim.id) and not lead.get(victim.id) and \
                not h.moves()
        wait_for(drained, 60, "node %d drained" % victim.id, 0.2)
        # every replica it held was dropped there, data and log
        wait_for(lambda: not victim.metrics(0)["ranges"] and
                 not victim.logged(), 20, "its replicas deleted", 0.2)
        st = status_json(h)
        op = [o for o in st["operations"] if o["kind"] == "drain"]
        assert op and op[0]["done"] == op[0]["total"], st["operations"]
        h.wait_writes(w, 100)
        assert not w.errors, w.errors
        victim.stop()
        live = [n.id for n in h.nodes.nodes if n is not victim]
        assert h.replicated(live, 3)
        h.wait_writes(w, 100)
        w.stop()
        w.check(r)
        assert not w.errors, w.errors
        out = subprocess.run([cairn_bin(), "admin", "--etcd", h.etcd.url,
                              "undrain", str(victim.id)],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert h.etcd.get_prefix(b"/cairn/drain/") == {}
    finally:
        h.close()


def test_leaders_piled_on_one_node_are_spread():
    """All leaders on one node (as after restarts): within 30 s the leader
    counts differ by at most 1, with no client error meanwhile."""
    h = Heal(3, controllers=0)
    try:
        r = make_table(h, splits=8)
        first = h.nodes.nodes[0]
        for rid in h.ranges():
            ld = h.nodes.leader(rid)
            if ld is not first:
                with ld.client(10) as c:
                    c.transfer_leader(rid, first.id)
        wait_for(lambda: set(h.leaders().values()) == {first.id}, 20,
                 "every leader on node 1", 0.1)
        w = Writer(h.router.port, threads=3).start()
        h.wait_writes(w, 100)
        h.ctls.append(h.start_controller("c0"))
        t0 = time.monotonic()

        def even():
            lead = counts(h)[1]
            return len(lead) == 3 and max(lead.values()) - \
                min(lead.values()) <= 1
        wait_for(even, 30, "leaders spread", 0.1)
        print("leaders spread in %.1f s: %s" % (time.monotonic() - t0,
                                                 counts(h)[1]))
        h.wait_writes(w, 100)
        w.stop()
        w.check(r)
        assert not w.errors, w.errors
    finally:
        h.close()


def test_rf5_two_dead_at_once_then_too_few_nodes():
    """7 nodes, RF 5: two nodes killed at once - every range is back to 5
    live replicas. A third killed leaves 4 live nodes for RF 5: the ranges
    stay under-replicated, reported by `cairn status`, nothing is removed,
    and writes go on (4 of 5)."""
    h = Heal(7)
    try:
        r = make_table(h, splits=2, replicas=5)
        w = Writer(h.router.port).start()
        h.wait_writes(w, 100)
        a, b, c = h.nodes.nodes[0], h.nodes.nodes[1], h.nodes.nodes[2]
        a.kill()
        b.kill()
        live = [n.id for n in h.nodes.nodes if n not in (a, b)]
        wait_for(lambda: h.replicated(live, 5), 40,
                 "every range back to 5 live replicas", 0.1)
        h.wait_writes(w, 50)
        c.kill()
        wait_for(lambda: h.state_of(c.id) == "dead", 20, "node 3 dead", 0.1)
        before = h.ranges()
        st = wait_for(lambda: (lambda s: s if s["summary"]
                               ["under_replicated"] >= 1 else None)(
            status_json(h)), 20, "under-replicated ranges reported", 0.2)
        held = [rid for rid, rg in before.items() if c.id in rg["replicas"]]
        bad = {u["range"] for u in st["unhealthy"]
               if "under-replicated" in u["problems"]}
        assert set(held) <= bad, (held, st["unhealthy"])
        h.wait_writes(w, 100)  # 4 of 5 replicas: still a majority
        # the controller looked at them and left them as they are
        wait_for(lambda: "no live node can take a replica" in
                 h.controller_log(), 20, "the controller to give up", 0.1)
        h.wait_writes(w, 50)
        after = h.ranges()
        for rid in held:
            assert after[rid]["replicas"] == before[rid]["replicas"]
        assert not h.moves()
        w.stop()
        w.check(r)
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
    finally:
        h.close()


def test_zones_spread_and_keep_replicas_apart():
    """Nodes in zones a, a, b, b, c, c: a table's replicas are created in
    three distinct zones, and a dead node's replicas are replaced in its
    own zone (the only one free), never next to a replica of the range."""
    zones = ["a", "a", "b", "b", "c", "c"]
    h = Heal(6, zones=zones)
    try:
        make_table(h, splits=3)
        zone_of = {n.id: zones[i] for i, n in enumerate(h.nodes.nodes)}

        def spread():
            return all(len({zone_of[n] for n in rg["replicas"]}) == 3
                       for rg in h.ranges().values())
        assert spread(), h.ranges()
        st = status_json(h)
        assert sorted(n["zone"] for n in st["nodes"]) == sorted(zones)
        victim = next(n for n in h.nodes.nodes
                      if any(n.id in rg["replicas"]
                             for rg in h.ranges().values()))
        victim.kill()
        live = [n.id for n in h.nodes.nodes if n is not victim]
        wait_for(lambda: h.replicated(live, 3), 30, "replaced", 0.1)
        assert spread(), h.ranges()
    finally:
        h.close()
