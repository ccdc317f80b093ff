"""A deposed leader that cannot hear the new leader never serves a stale
read (issue 11, readindex.c; Raft thesis section 6.4). Needs root: the
nodes run as their own users so that nftables can cut one pair of them
(cluster.py, Net).

tests/cluster/test_readindex.py pauses a leader with reads in its socket;
but when it resumes, the new leader's higher-term messages wait in the same
socket buffers and often depose it before it looks at the reads, so that
test alone cannot tell whether the ReadIndex round is sound. Here the old
leader A is cut off from the new leader B before it resumes, while the
third node C still reaches both: A's round can only be answered by C,
which follows B in a newer term. C must refuse, so every read fails
(NOQUORUM, or NOT_LEADER once A learns the newer term from C) and none
returns the replaced value.

The range sleeps before A is paused: a sleeping leader has no ticks, so on
waking the ReadIndex round is its first act, before any heartbeat of its
own could come back from C with the newer term. A follower that confirmed
a round without checking its term and leader would hand A a majority in a
millisecond, and A would answer "old" - this test fails then (checked by
breaking readindex.c's term check on purpose).
"""
import os
import sys

import pytest
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cluster import Cluster  # noqa: E402
from cairn_rpc import Client  # noqa: E402
from harness import wait_for  # noqa: E402
from test_readindex import READERS, InFlight, ranges_of  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="needs root (users, nftables)")


@pytest.fixture(scope="module")
def cl():
    c = Cluster(n_nodes=3, n_routers=1, keep=bool(os.environ.get(
        "CAIRN_KEEP_TMP")))
    try:
        yield c.start()
    finally:
        c.close()


ROUNDS, CLEAN_ROUNDS = 6, 3


def leader_of(nodes, rid):
    return next((n for n in nodes
                 if ranges_of(n).get(rid, {}).get("role") == "leader"), None)


def test_a_cut_off_deposed_leader_serves_no_stale_read(cl):
    r = redis.Redis(port=cl.routers[0].port, socket_timeout=20)
    wait_for(lambda: r.execute_command("PING"), 30, "the router", 0.2)
    clean = 0
    for round_ in range(ROUNDS):
        if one_round(cl, r, "stale-%d" % round_):
            clean += 1
    # A round whose election went past one term proves nothing (see
    # one_round); most go straight to the next term.
    assert clean >= CLEAN_ROUNDS, "only %d of %d rounds had a one-term " \
        "election" % (clean, ROUNDS)


def one_round(cl, r, table):
    """Reads at a deposed, cut-off leader; False if the round had to be
    skipped."""
    assert r.execute_command("TABLE.CREATE", table, "REPLICAS", "3") == b"OK"
    r.execute_command("KV.PUT", table, "k", "old")
    rid = max(ranges_of(cl.nodes[0]))  # the newest range: this table's
    wait_for(lambda: all(ranges_of(n)[rid]["asleep"] for n in cl.nodes),
             60, "the range to sleep", 0.2)
    a = wait_for(lambda: leader_of(cl.nodes, rid), 30, "a leader")
    epoch, term = ranges_of(a)[rid]["epoch"], ranges_of(a)[rid]["term"]
    rest = [n for n in cl.nodes if n is not a]
    # A hears nothing from the moment it stops: whatever the others send
    # it now would wait in its socket buffers and tell it the new term
    # when it resumes.
    a.pause()
    cl.net.partition([[a], rest])
    try:
        reads = InFlight(a, rid, epoch, b"k")
        b = wait_for(lambda: leader_of(rest, rid), 30,
                     "a new leader among the others")
        with Client(b.addr, timeout=10) as c:
            wait_for(lambda: c.put(rid, epoch, b"k", b"new"), 10,
                     "a write on the new leader")
        # Only if B won the very next term did C never campaign (as a
        # candidate it would have sent A a vote request of the new term,
        # which TCP delivers once C and A are joined again). Pre-votes do
        # not change the receiver's term.
        one_term = ranges_of(b)[rid]["term"] == term + 1
        cl.net.partition([[a], [b]])
    finally:
        a.resume()
    try:
        results = reads.join()
    finally:
        cl.net.heal()
    print(table, "term", term, "->", ranges_of(b)[rid]["term"], results)
    assert len(results) == READERS, results
    for got in results:
        assert got != b"old", "stale read from a deposed leader: %s" % (
            results,)
        assert got in (b"new", "NOT_LEADER", "NOQUORUM", "TRYAGAIN"), results
    assert wait_for(lambda: r.execute_command("KV.GET", table, "k"), 20,
                    "the key through the router") == b"new"
    return one_term
