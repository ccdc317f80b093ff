"""The node side of the controller's replacements (issue 9): membership
changes a controller can repeat, and epochs a late joiner agrees on.

A controller that dies between two steps of a replacement, or loses the
answer to one, sends the same request again: ADD_REPLICA of a node that is
already a voter (or still a standby) and REMOVE_REPLICA of a node already
gone must succeed and answer with an epoch to record. A replica created
to join (no bootstrap) with whatever epoch the metadata had, that then
replays the log from its start, must end at the group's epoch: the epoch
entries carry the new epoch rather than "one more".
"""
import re

import pytest

from cairn_rpc import RpcError
from nodeharness import Cluster, wait_for

R = 7


def epoch_of(reply):
    m = re.search(r"epoch (\d+)$", reply)
    assert m, reply
    return int(m.group(1))


def test_add_and_remove_again_and_a_late_joiner_takes_the_group_epoch():
    with Cluster(4) as cl:
        n1, n2, n3, n4 = cl.nodes
        ld = cl.create_range(R, members=[n1, n2, n3])
        with ld.client() as c:
            for i in range(20):
                c.put(R, 1, b"k%d" % i, b"v%d" % i)
        # created with an epoch far ahead of the group's (1): the log it
        # replays from index 1 carries the epochs to take
        with n4.client() as c:
            c.create_replica(R, [(n.id, n.addr) for n in cl.nodes], epoch=9,
                             bootstrap=False)
        with ld.client(20) as c:
            e1 = epoch_of(c.add_replica(R, n4.id, n4.addr))
            assert e1 == 2
            # again: already a voter - done, with a newer epoch
            e2 = epoch_of(c.add_replica(R, n4.id, n4.addr))
            assert e2 == 3
            # the same id at another address is refused
            with pytest.raises(RpcError) as e:
                c.add_replica(R, n4.id, "127.0.0.1:1")
            assert e.value.word == "INVALID"
        wait_for(lambda: {n.metrics(R)["epoch"] for n in cl.nodes} == {3},
                 20, "every replica at epoch 3, the joiner included")
        with ld.client(20) as c:
            e3 = epoch_of(c.remove_replica(R, n4.id))
            e4 = epoch_of(c.remove_replica(R, n4.id))  # already gone
            assert (e3, e4) == (4, 5)
            ids = {f["id"] for f in ld.metrics(R)["followers"]}
            assert n4.id not in ids
            assert c.get(R, 5, b"k3")[0] == b"v3"
        with n4.client(20) as c:
            assert c.drop_replica(R) == "dropped"


def test_changes_carry_an_epoch_above_the_metadatas():
    """etcd records only epochs a leader applied, and a replica serves only
    its current epoch: a change asked for with the metadata's epoch (which
    got ahead) answers with one above it, and BUMP_EPOCH moves the range
    past one without a membership change."""
    with Cluster(4) as cl:
        n1, n2, n3, n4 = cl.nodes
        ld = cl.create_range(R, members=[n1, n2, n3])
        with n4.client() as c:
            c.create_replica(R, [(n.id, n.addr) for n in cl.nodes],
                             bootstrap=False)
        with ld.client(20) as c:
            c.put(R, 1, b"k", b"v")
            assert epoch_of(c.add_replica(R, n4.id, n4.addr, epoch=10)) == 11
            # the metadata at 20, the range at 11: refused until it moves
            with pytest.raises(RpcError) as e:
                c.get(R, 20, b"k")
            assert e.value.word == "TRYAGAIN"
            assert epoch_of(c.bump_epoch(R, 20)) == 21
            assert c.get(R, 21, b"k")[0] == b"v"
            assert epoch_of(c.remove_replica(R, n4.id, epoch=30)) == 31
            assert epoch_of(c.bump_epoch(R)) == 32  # no floor: one more
        wait_for(lambda: {n.metrics(R)["epoch"] for n in (n1, n2, n3)} ==
                 {32}, 20, "every replica at epoch 32")
