"""The controller with real nodes, a real router and a real etcd.

Backstop for leader records: nodes started without --etcd never record
their leaderships; a table created through the router then has no leader
in etcd, and the active controller's metrics poll records, for each range,
the node that reports itself leader, with its term.
"""
import json
import os
import shutil
import socket
import tempfile

import redis

from harness import Etcd, Procs, cairn_bin, free_port, wait_for
from nodeharness import Cluster


def leader_of(cl, rng):
    """(node id, term) of the node that reports itself leader of rng."""
    ld = cl.leader(rng)
    return (ld.id, ld.metrics(rng)["term"]) if ld else None


def test_controller_records_leaders_nodes_did_not():
    tmp = tempfile.mkdtemp(prefix="cairn-ctlcluster-")
    procs = Procs()
    etcd, cl = Etcd(tmp, procs), None
    try:
        etcd.start()
        cl = Cluster(3).start()  # no --etcd: these nodes record nothing
        for n in cl.nodes:  # what a node's keeper would write
            etcd.put("/cairn/nodes/%016x" % n.id,
                     json.dumps({"addr": n.addr, "capacity": 1 << 40}))
            etcd.put("/cairn/live/%016x" % n.id, "")
        port = free_port()
        procs.start([cairn_bin(), "router", "--listen", "127.0.0.1:%d" % port,
                     "--etcd", etcd.url], os.path.join(tmp, "router.log"))

        def router_up():
            with socket.create_connection(("127.0.0.1", port), 1):
                return True
        wait_for(router_up, 15, "the router")
        r = redis.Redis(port=port, socket_timeout=30)
        assert r.execute_command("TABLE.CREATE", "t", "SPLITS", "m") == b"OK"
        ranges = [json.loads(v)["id"] for v in
                  etcd.range("/cairn/ranges/", prefix=True).values()]
        assert len(ranges) == 2
        assert etcd.range("/cairn/leaders/", prefix=True) == {}

        ctl = procs.start([cairn_bin(), "controller", "--etcd", etcd.url,
                           "--id", "c", "--interval-ms", "200"],
                          os.path.join(tmp, "controller.log"))

        def all_recorded():
            for rng in ranges:
                v = etcd.range("/cairn/leaders/%016x" % rng)
                want = leader_of(cl, rng)
                if not v or want is None:
                    return False
                rec = json.loads(next(iter(v.values())))
                if (rec["node"], rec["term"]) != want:
                    return False
            return True
        wait_for(all_recorded, 20, "the controller to record both leaders",
                 0.2)
        assert r.execute_command("KV.PUT", "t", "k", "v")
        assert r.execute_command("KV.GET", "t", "k") == b"v"
        procs.stop(ctl)
        assert ctl.returncode == 0
        with open(os.path.join(tmp, "controller.log"), errors="replace") as f:
            text = f.read()  # an ASan build reports leaks and errors here
        assert "recorded node" in text
        assert "Sanitizer" not in text and "runtime error" not in text, text
    finally:
        procs.stop_all()  # etcd last: it was started first
        if cl:
            cl.close()
        shutil.rmtree(tmp, ignore_errors=True)
