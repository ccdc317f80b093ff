"""`cairn node --etcd`: registration and leader records (src/node/node_meta.c).

Real nodes and a real etcd on loopback. A node registers (P/nodes/<id> with
its address, the lease-backed P/live/<id>); each new leadership is recorded
in P/leaders/<range> with its term; while etcd is down the node keeps
serving and a leadership won meanwhile is recorded once etcd is back; a
node stopped with SIGTERM leaves the live set at once (lease revoked).
"""
import json
import shutil
import tempfile

from harness import Etcd
from nodeharness import Cluster, wait_for

RANGE = 7


def live_ids(etcd):
    return {int(k.rsplit("/", 1)[1], 16)
            for k in etcd.range("/cairn/live/", prefix=True)}


def leader_record(etcd):
    v = etcd.range("/cairn/leaders/%016x" % RANGE)
    return json.loads(next(iter(v.values()))) if v else None


def recorded(etcd, node):
    """The record names `node` in the term it reports as leader."""
    term = node.metrics(RANGE)["term"]
    return leader_record(etcd) == {"node": node.id, "term": term}


def transfer(cl, frm, to):
    with frm.client() as c:
        c.transfer_leader(RANGE, to.id)
    return wait_for(lambda: cl.leader(RANGE) is to and to, 20,
                    "node %d to lead" % to.id)


def test_register_record_and_survive_etcd_outage():
    tmp = tempfile.mkdtemp(prefix="cairn-nodemeta-")
    etcd = Etcd(tmp)
    cl = None
    try:
        etcd.start()
        cl = Cluster(3, node_args=["--etcd", etcd.url]).start()
        wait_for(lambda: live_ids(etcd) == {1, 2, 3}, 15, "three live nodes")
        nodes = etcd.range("/cairn/nodes/", prefix=True)
        assert {json.loads(v)["addr"] for v in nodes.values()} == \
            {n.addr for n in cl.nodes}

        first = cl.create_range(RANGE)
        wait_for(lambda: recorded(etcd, first), 10, "the first leader record")
        term1 = leader_record(etcd)["term"]

        second = next(n for n in cl.nodes if n is not first)
        transfer(cl, first, second)
        wait_for(lambda: recorded(etcd, second), 10, "the new leader record")
        assert leader_record(etcd)["term"] > term1

        # etcd goes away: Raft and the data path do not need it.
        etcd.kill()
        third = next(n for n in cl.nodes if n not in (first, second))
        transfer(cl, second, third)
        ld = cl.wait_leader(RANGE)
        with ld.client() as c:
            c.put(RANGE, 1, b"during-outage", b"ok")
            assert c.get(RANGE, 1, b"during-outage")[0] == b"ok"
        etcd.start()
        wait_for(lambda: recorded(etcd, ld), 20,
                 "the leadership won during the outage to be recorded")
        wait_for(lambda: live_ids(etcd) == {1, 2, 3}, 20,
                 "every node registered after the outage")

        # A clean stop revokes the lease: gone well before the 6 s TTL.
        cl.node(3).stop()
        wait_for(lambda: 3 not in live_ids(etcd), 3, "node 3 to leave")
        assert cl.node(3).proc.returncode == 0
        with open(cl.node(3).log, errors="replace") as f:
            text = f.read()  # with an ASan build: leaks and errors show here
        assert "Sanitizer" not in text and "runtime error" not in text, text
    finally:
        if cl:
            cl.close()
        etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
