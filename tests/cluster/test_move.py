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


def test_copy_lands_only_newer_records_from_a_fenced_source():
    """SCAN_RECORDS of a fenced source (tombstones included) copied into a
    destination that already took newer writes: the destination ends with
    the newer of the two for every key, and copying again lands nothing."""
    D = R + 100
    with Cluster(3) as cl:
        src = cl.create_range(R)
        dst = cl.create_range(D)
        with src.client(10) as c:
            for i in range(50):
                c.put(R, 1, b"k%02d" % i, b"old%d" % i)
            for i in range(0, 50, 5):
                c.delete(R, 1, b"k%02d" % i)
            epoch, top = fence_of(c.fence(R, 0))
        # after the fence: new writes (and a delete) on the destination
        with dst.client(10) as c:
            for i in range(0, 50, 7):
                c.put(D, 1, b"k%02d" % i, b"new%d" % i)
            c.put(D, 1, b"k03", b"gone")
            c.delete(D, 1, b"k03")
        with src.client(10) as c:
            recs, more = c.scan_records(R, epoch, limit=1000)
        assert not more and len(recs) == 50
        assert sum(1 for r in recs if r[2]) == 10  # the tombstones
        assert all(s < top for _, s, _, _ in recs)
        with dst.client(10) as c:
            landed = int(c.copy(D, 1, recs).split()[1])
            # not over the 8 newer puts nor the newer delete of k03
            assert landed == 50 - 8 - 1
            assert c.copy(D, 1, recs) == "copied 0 of 50"
            got = {k: v for k, v, _ in c.scan_all(D, 1)}
        want = {}
        for i in range(50):
            k = b"k%02d" % i
            if i % 7 == 0:
                want[k] = b"new%d" % i
            elif i % 5 != 0 and i != 3:
                want[k] = b"old%d" % i
        assert got == want
        # a copy at an epoch the destination is not at is refused
        with dst.client(10) as c:
            with pytest.raises(RpcError) as e:
                c.copy(D, 2, recs[:1])
            assert e.value.word in ("STALE_EPOCH", "TRYAGAIN")


def test_floor_keeps_new_writes_above_it_across_restarts():
    """FLOOR: the destination's clock moves past the source's fence
    sequencer - here one an hour ahead of the wall clock - on every
    replica, and stays past it after a kill -9 of every node (the floor is
    in the range's meta: a replayed log does not observe epoch entries)."""
    import struct
    import time
    ahead = struct.pack(">QII", time.time_ns() + 3600 * 10**9, 0, 99)
    with Cluster(3) as cl:
        ld = cl.create_range(R)
        with ld.client(10) as c:
            assert c.put(R, 1, b"before", b"x") < ahead
            m = re.search(r"^floor: done, epoch (\d+)$", c.floor(R, 0, ahead))
            assert m, "bad floor answer"
            epoch = int(m.group(1))
        # no write after the floor before the restart: a replayed write
        # above the floor would move the clocks too
        for n in cl.nodes:
            n.kill()
        for n in cl.nodes:
            n.start()
        ld = cl.wait_leader(R)
        for n in cl.nodes:  # every replica: any may lead next
            if n is not ld:
                with ld.client(10) as c:
                    c.transfer_leader(R, n.id)
                ld = cl.wait_leader(R)
                assert ld is n
            with ld.client(10) as c:
                assert c.put(R, epoch, b"k%d" % n.id, b"z") > ahead
