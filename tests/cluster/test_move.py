"""The node side of a live move (issue 10, DESIGN.md "Split and move"),
against real `cairn node` processes: the fence (step 2) and the copy's
"lands only if newer" writes (step 5, entry.h ENTRY_COND_IFNEWER, tested
in tests/unit/replication/test_entry.c).

The fence is an epoch entry that freezes the source: from the moment it
applies, every replica refuses every write - those proposed before it
too - and the answer names a sequencer above everything the range holds.
It is a Raft entry, so it survives the leader's kill -9 and a restart.
"""
import re
import threading

import pytest

from cairn_rpc import RpcError
from nodeharness import Cluster, wait_for

R = 11


def fence_of(reply):
    """(epoch, seq bytes) of a FENCE answer."""
    m = re.search(r"^fence: done, epoch (\d+), seq ([0-9a-f]{32})$", reply)
    assert m, reply
    return int(m.group(1)), bytes.fromhex(m.group(2))


class Writers:
    """Threads writing fresh keys to the leader at epoch 1 until refused;
    every acknowledged write is kept with its sequencer."""

    def __init__(self, node, threads=3):
        self.node, self.acked, self.refused = node, {}, {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(t,),
                                         daemon=True) for t in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, t):
        with self.node.client(10) as c:
            for i in range(100000):
                key = b"w%d-%06d" % (t, i)
                try:
                    s = c.put(R, 1, key, b"v%d" % i)
                except RpcError as e:
                    with self.lock:
                        self.refused[key] = e.word
                    return
                with self.lock:
                    self.acked[key] = (b"v%d" % i, s)

    def join(self):
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()


def test_fence_under_writes_freezes_the_range_for_good():
    with Cluster(3) as cl:
        ld = cl.create_range(R)
        assert ld.metrics(R)["frozen"] is False
        w = Writers(ld)
        wait_for(lambda: len(w.acked) >= 300, 30, "300 acknowledged writes")
        with ld.client(20) as c:
            epoch, top = fence_of(c.fence(R, 0))
        w.join()
        assert epoch == 2
        # the writers stopped on the epoch (or a write proposed before the
        # fence and refused as it applied): never an unknown outcome
        assert set(w.refused.values()) <= {"STALE_EPOCH",
                                           "KEY_OUT_OF_RANGE"}, w.refused
        # the fence's sequencer is above every acknowledged write's
        assert all(s < top for _, s in w.acked.values())

        def frozen(node, epoch):
            """A write at the current epoch is refused, reads still go."""
            with node.client(10) as c:
                with pytest.raises(RpcError) as e:
                    c.put(R, epoch, b"after", b"x")
                assert e.value.word == "KEY_OUT_OF_RANGE", e.value
                with pytest.raises(RpcError) as e:
                    c.split(R, epoch, R + 1, b"w1")
                assert e.value.word == "INVALID", e.value
                got = {k: v for k, v, _ in c.scan_all(R, epoch)}
            lost = [k for k, (v, _) in w.acked.items() if got.get(k) != v]
            assert not lost, "%d acknowledged writes lost" % len(lost)
            assert b"after" not in got
            assert node.metrics(R)["frozen"] is True
        frozen(ld, epoch)

        # kill -9 the leader: the fence is in the log, the new leader is
        # frozen too; and the old one, restarted, replays it
        ld.kill()
        ld2 = cl.wait_leader(R, exclude=ld)
        frozen(ld2, epoch)
        ld.start()
        wait_for(lambda: ld.metrics(R)["epoch"] == epoch, 20,
                 "the restarted node at the fence's epoch")
        with ld2.client(20) as c:  # fencing again: idempotent, a new epoch
            epoch2, top2 = fence_of(c.fence(R, 0))
        assert epoch2 == epoch + 1 and top2 > top
        with ld2.client(20) as c:
            c.transfer_leader(R, ld.id)
        ld3 = cl.wait_leader(R)
        frozen(ld3, epoch2)


def test_fence_is_leader_only_and_moves_past_a_floor():
    with Cluster(3) as cl:
        ld = cl.create_range(R)
        follower = next(n for n in cl.nodes if n is not ld)
        with follower.client(10) as c:
            with pytest.raises(RpcError) as e:
                c.fence(R, 0)
            assert e.value.word == "NOT_LEADER"
        with ld.client(20) as c:
            c.put(R, 1, b"k", b"v")
            # the metadata's epoch (9) got ahead: the fence goes above it
            epoch, _ = fence_of(c.fence(R, 9))
            assert epoch == 10
            assert c.get(R, 10, b"k")[0] == b"v"
