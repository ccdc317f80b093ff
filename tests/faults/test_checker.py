"""Tests of the fault suite's linearizability checker (checker.py).

Hand-made histories, linearizable and not, for every rule the checker
applies (unknown outcomes, TRYAGAIN writes that appear, two-step deletes,
conditional puts, sequencers), a random cross-check against a brute-force
search over every order, and a speed check: thousands of ops on one key
with heavy concurrency and many unknown outcomes check in seconds.

    /usr/bin/python3 -m pytest -q tests/faults/test_checker.py
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402


def op(kind, start, end, value=None, outcome="ok", key="k", **kw):
    d = {"key": key, "op": kind, "value": value, "start": start,
         "end": end if outcome == "ok" or end is not None else None,
         "outcome": outcome, "client": kw.pop("client", 0)}
    d.update(kw)
    return d


def put(s, e, v, outcome="ok", **kw):
    return op("put", s, e, v, outcome, seq=kw.pop("seq", None), **kw)


def get(s, e, v, seq=None, **kw):
    return op("get", s, e, v, "ok", seq=seq, **kw)


def dele(s, e, deleted=1, outcome="ok", **kw):
    return op("del", s, e, None, outcome, deleted=deleted, **kw)


def cas(s, e, v, ifseq, result="written", outcome="ok", seq=None, **kw):
    return op("put_ifseq", s, e, v, outcome, ifseq=ifseq, result=result,
              seq=seq, **kw)


def absent(s, e, v, result="written", outcome="ok", seq=None, **kw):
    return op("put_ifabsent", s, e, v, outcome, result=result, seq=seq, **kw)


def ok(hist):
    r = checker.check(hist)
    return r.ok


def kinds(hist):
    return [v.kind for v in checker.check(hist).violations]


# ---- hand-made histories --------------------------------------------------

def test_sequential_register():
    assert ok([put(0, 1, "a"), get(2, 3, "a"), put(4, 5, "b"), get(6, 7, "b"),
               dele(8, 9, 1), get(10, 11, None), dele(12, 13, 0)])


def test_stale_read_is_caught():
    h = [put(0, 1, "a"), put(2, 3, "b"), get(4, 5, "a")]
    assert kinds(h) == ["not-linearizable"]


def test_concurrent_write_may_be_seen_or_not():
    h = [put(0, 1, "a"), put(2, 10, "b"), get(3, 4, "a"), get(5, 6, "b"),
         get(7, 8, "b")]
    assert ok(h)
    # once b is seen, a read starting after that cannot see a again
    h2 = h + [get(9, 9.5, "a")]
    assert kinds(h2) == ["not-linearizable"]


def test_reads_that_disagree_on_order_of_concurrent_writes():
    # two concurrent writes; two later reads see them in opposite orders
    h = [put(0, 5, "a"), put(0, 5, "b"), get(6, 7, "a"), get(8, 9, "b")]
    assert kinds(h) == ["not-linearizable"]


def test_lost_acknowledged_write():
    h = [put(0, 1, "a"), put(2, 3, "b"), get(100, 101, None)]
    assert kinds(h) == ["not-linearizable"]


def test_unknown_write_may_apply_late_or_never():
    assert ok([put(0, 1, "a"), put(2, None, "b", "unknown"), get(50, 51, "a")])
    assert ok([put(0, 1, "a"), put(2, None, "b", "unknown"), get(50, 51, "b")])
    # applied late: after a later acknowledged write
    assert ok([put(2, None, "b", "unknown"), put(3, 4, "c"), get(5, 6, "c"),
               get(7, 8, "b")])
    # but once seen, it is in the past: c cannot come back afterwards
    h = [put(2, None, "b", "unknown"), put(3, 4, "c"), get(5, 6, "b"),
         get(7, 8, "c")]
    assert kinds(h) == ["not-linearizable"]


def test_unknown_write_cannot_apply_before_it_started():
    h = [get(0, 1, "b"), put(2, None, "b", "unknown")]
    assert kinds(h) == ["read-before-write"]


def test_tryagain_write_that_appears_is_a_violation():
    h = [put(0, 1, "a"), put(2, 3, "b", "failed", error="TRYAGAIN no answer"),
         get(4, 5, "b")]
    v = checker.check(h).violations
    assert [x.kind for x in v] == ["failed-write-applied"]
    assert "TRYAGAIN" in v[0].message
    # and one that does not appear is fine
    assert ok([put(0, 1, "a"), put(2, 3, "b", "failed"), get(4, 5, "a")])


def test_tryagain_delete_that_applied_is_pointed_at():
    # a delete answered TRYAGAIN shows only through its effect: the
    # counter-example names it as the explanation
    d = dele(2, 3, outcome="failed", error="TRYAGAIN connection lost")
    v = checker.check([put(0, 1, "a"), d, get(4, 5, None)]).violations
    assert [x.kind for x in v] == ["not-linearizable"]
    assert "explained if the del answered TRYAGAIN was applied" in \
        v[0].message
    assert "LINEARIZABLE IF IT WAS APPLIED" in v[0].format()


def test_phantom_value():
    assert kinds([put(0, 1, "a"), get(2, 3, "zz")]) == ["phantom"]


def test_unknown_anonymous_write_explains_a_failed_ifabsent():
    # nothing acknowledged was ever written, yet IFABSENT failed: only the
    # unknown write (never read) can explain it
    h = [put(0, None, "a", "unknown"), absent(5, 6, "b", "condition")]
    assert ok(h)
    assert kinds([absent(5, 6, "b", "condition")]) == ["not-linearizable"]


def test_unknown_anonymous_write_is_used_once():
    # one unknown write, deleted, then an IFABSENT fails again: needs a
    # second value
    h = [put(0, None, "a", "unknown"), absent(1, 2, "b", "condition"),
         dele(3, 4, 1), absent(5, 6, "c", "condition")]
    assert kinds(h) == ["not-linearizable"]
    h2 = [put(0, None, "a", "unknown"), put(0.5, None, "x", "unknown")] + h[1:]
    assert ok(h2)


def test_unknown_delete():
    assert ok([put(0, 1, "a"), dele(2, None, outcome="unknown"),
               get(3, 4, None)])
    assert ok([put(0, 1, "a"), dele(2, None, outcome="unknown"),
               get(3, 4, "a")])
    # a delete that failed (TRYAGAIN) did nothing
    assert kinds([put(0, 1, "a"), dele(2, 3, outcome="failed"),
                  get(4, 5, None)]) == ["not-linearizable"]


def test_concurrent_deletes_may_both_answer_one():
    # docs/API.md: the router reads, then writes the tombstone
    h = [put(0, 1, "a"), dele(2, 10, 1), dele(3, 9, 1), get(11, 12, None)]
    assert ok(h)
    # but a delete answering 1 needs a live value at some point
    assert kinds([dele(2, 3, 1)]) == ["not-linearizable"]
    assert kinds([put(0, 1, "a"), dele(2, 3, 0)]) == ["not-linearizable"]


def test_delete_check_precedes_its_tombstone():
    # the delete's read saw a live value: b (written at 5..6) cannot be it
    # if the delete finished before b started... a was deleted at 2..3 and
    # nothing else was live, so a second delete 3.5..4 answering 1 fails
    h = [put(0, 1, "a"), dele(2, 3, 1), dele(3.5, 4, 1), put(5, 6, "b")]
    assert kinds(h) == ["not-linearizable"]


def test_ifseq():
    s1 = "%032x" % 1
    h = [put(0, 1, "a", seq=s1), cas(2, 3, "b", s1, seq="%032x" % 2),
         get(4, 5, "b", seq="%032x" % 2), cas(6, 7, "c", s1, "condition")]
    assert ok(h)
    # IFSEQ on a's sequencer succeeding after b replaced a
    h2 = [put(0, 1, "a", seq=s1), put(2, 3, "b", seq="%032x" % 2),
          cas(4, 5, "c", s1, seq="%032x" % 3)]
    assert kinds(h2) == ["not-linearizable"]
    # CONDITION while a is certainly the value
    h3 = [put(0, 1, "a", seq=s1), cas(2, 3, "c", s1, "condition")]
    assert kinds(h3) == ["not-linearizable"]


def test_ifseq_on_value_of_unknown_write_seen_with_its_sequencer():
    s = "%032x" % 7
    h = [put(0, None, "a", "unknown", seq=None), get(1, 2, "a", seq=s),
         cas(3, 4, "b", s, seq="%032x" % 8), get(5, 6, "b", seq="%032x" % 8)]
    assert ok(h)


def test_ifabsent():
    assert ok([absent(0, 1, "a", seq="%032x" % 1), absent(2, 3, "b",
                                                          "condition"),
               dele(4, 5, 1), absent(6, 7, "c", seq="%032x" % 2)])
    assert kinds([put(0, 1, "a"), absent(2, 3, "b", seq="%032x" % 9)]) == \
        ["not-linearizable"]


def test_sequencer_rules():
    a = put(0, 1, "a", seq="%032x" % 5)
    assert kinds([a, get(2, 3, "a", seq="%032x" % 6)]) == ["sequencer"]
    # a later write with a lower sequencer than an earlier one
    h = [put(0, 1, "a", seq="%032x" % 5), put(2, 3, "b", seq="%032x" % 4)]
    assert kinds(h) == ["sequencer-order"]
    # concurrent writes may come in any order
    assert ok([put(0, 3, "a", seq="%032x" % 5), put(1, 2, "b",
                                                     seq="%032x" % 4),
               get(4, 5, "a", seq="%032x" % 5)])


def test_keys_are_independent():
    h = [put(0, 1, "a", key="x"), put(0, 1, "a", key="y"),
         get(2, 3, "a", key="x"), get(2, 3, None, key="z")]
    r = checker.check(h)
    assert r.ok and r.keys == 3


def test_counterexample_is_the_smallest_window():
    # 200 fine ops, then a stale read: the window should hold only the few
    # ops around the failure, not all 200
    h, t = [], 0.0
    for i in range(100):
        h.append(put(t, t + 1, "v%d" % i, seq="%032x" % (i + 1)))
        h.append(get(t + 2, t + 3, "v%d" % i, seq="%032x" % (i + 1)))
        t += 4
    h.append(put(t, t + 1, "last", seq="%032x" % 1000))
    h.append(get(t + 2, t + 3, "v99", seq="%032x" % 100))
    r = checker.check(h)
    # a stale read with its sequencer is caught by the sequencer order too
    assert [v.kind for v in r.violations] == ["sequencer-order"]
    h[-1]["seq"] = None
    r = checker.check(h)
    assert [v.kind for v in r.violations] == ["not-linearizable"]
    v = r.violations[0]
    assert 2 <= len(v.window) <= 3, v.format()
    assert v.culprit is h[-1]
    text = v.format()
    assert "smallest failing window" in text and ">>" in text


def test_failed_reads_are_dropped_and_history_loads(tmp_path):
    import json
    h = [put(0, 1, "a"), op("get", 2, None, None, "unknown"),
         op("get", 2, 3, None, "failed"), get(4, 5, "a")]
    p = tmp_path / "h.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in h))
    assert checker.main(["checker.py", str(p)]) == 0


# ---- brute force cross-check ---------------------------------------------

def brute(hist):
    """Every order of the ops (exponential: tiny histories only). True if
    some order explains the history."""
    seqv = {o["seq"]: o["value"] for o in hist
            if o["outcome"] == "ok" and o.get("seq") and o.get("value")}
    pts = []   # (start, end, required, fn(state) -> new or FAIL, dep index)
    F = object()
    for o in hist:
        if o["outcome"] == "failed" or (o["op"] == "get" and
                                         o["outcome"] != "ok"):
            continue
        req = o["outcome"] == "ok"
        s, e = o["start"], (o["end"] if req else float("inf"))
        k, v = o["op"], o.get("value")
        if k == "get":
            pts.append((s, e, True, lambda st, v=v: st if st == v else F, None))
        elif k == "put":
            pts.append((s, e, req, lambda st, v=v: v, None))
        elif k == "del":
            if not req:
                pts.append((s, e, False, lambda st: None, None))
            elif o["deleted"]:
                pts.append((s, e, True, lambda st: st if st is not None else F,
                            None))
                pts.append((s, e, True, lambda st: None, len(pts) - 1))
            else:
                pts.append((s, e, True, lambda st: st if st is None else F,
                            None))
        else:
            x = None if k == "put_ifabsent" else seqv.get(o["ifseq"], F)
            if not req or o["result"] == "written":
                pts.append((s, e, req, lambda st, x=x, v=v: v if st == x
                            else F, None))
            else:
                pts.append((s, e, True, lambda st, x=x: st if st != x else F,
                            None))
    memo = set()

    def go(state, done):
        if all(i in done or not p[2] for i, p in enumerate(pts)):
            return True
        if (state, done) in memo:
            return False
        memo.add((state, done))
        for i, p in enumerate(pts):
            if i in done or (p[4] is not None and p[4] not in done):
                continue
            # every undone required point that ended before p started
            # must come first
            if any(j not in done and q[2] and q[1] < p[0]
                   for j, q in enumerate(pts)):
                continue
            ns = p[3](state)
            if ns is not F and go(ns, done | frozenset([i])):
                return True
        return False
    return go(None, frozenset())


def random_history(rng, n_ops, n_clients):
    """A history of a correct register (linearization points drawn inside
    each op), with some unknown and failed outcomes; then maybe one result
    corrupted."""
    hist, clock = [], [0.0] * n_clients
    for i in range(n_ops):
        c = rng.randrange(n_clients)
        s = clock[c] + rng.random()
        e = s + rng.random() * 3
        clock[c] = e
        kind = rng.choice(["get", "get", "put", "del", "put_ifseq",
                           "put_ifabsent"])
        hist.append({"key": "k", "op": kind, "start": s, "end": e,
                     "value": None if kind in ("get", "del") else "v%d" % i,
                     "client": c, "lp": rng.uniform(s, e),
                     "outcome": "ok"})
    state, seqs = None, []
    for o in sorted(hist, key=lambda o: o["lp"]):
        k = o["op"]
        fate = rng.random()
        if k != "get" and fate < 0.15:
            o["outcome"] = "unknown"
            o["end"] = None
            if rng.random() < 0.5:
                continue  # never applied
        elif k != "get" and fate < 0.25:
            o["outcome"] = "failed"
            continue
        if k == "get":
            o["value"] = state
        elif k == "put":
            state = o["value"]
            seqs.append(o["value"])
        elif k == "del":
            o["deleted"] = int(state is not None)
            state = None
        elif k == "put_ifabsent":
            if state is None:
                state, o["result"] = o["value"], "written"
                seqs.append(o["value"])
            else:
                o["result"] = "condition"
        else:
            target = rng.choice(seqs) if seqs else None
            o["ifseq"] = "s:%s" % target
            if target is not None and state == target:
                state, o["result"] = o["value"], "written"
                seqs.append(o["value"])
            else:
                o["result"] = "condition"
                if o["outcome"] == "unknown":
                    o["outcome"] = "ok"  # a CONDITION is an answer
                    o["end"] = o["start"] + 0.5
    for o in hist:
        del o["lp"]
        if o["outcome"] == "ok" and o["op"] != "del" and o.get("value") and \
                o.get("result", "written") == "written":
            o["seq"] = "s:%s" % o["value"]
        o.setdefault("deleted", 0)
        o.setdefault("result", "written")
        o.setdefault("ifseq", "s:None")
    if rng.random() < 0.6:
        o = rng.choice(hist)
        vals = [x["value"] for x in hist if x["value"]] + [None]
        if o["op"] == "get":
            o["value"] = rng.choice(vals)
            o["seq"] = "s:%s" % o["value"] if o["value"] else None
        elif o["op"] == "del":
            o["deleted"] = 1 - o["deleted"]
        elif o["op"] in ("put_ifseq", "put_ifabsent") and o["outcome"] == "ok":
            o["result"] = "condition" if o["result"] == "written" else \
                "written"
            o["seq"] = "s:%s" % o["value"] if o["result"] == "written" \
                else None
        else:
            o["outcome"] = rng.choice(["ok", "failed", "unknown"])
            if o["outcome"] == "unknown":
                o["end"] = None
            elif o["end"] is None:
                o["end"] = o["start"] + 1
    return hist


def test_random_histories_agree_with_brute_force():
    rng = random.Random(1)
    agree = {True: 0, False: 0}
    for i in range(3000):
        h = random_history(rng, rng.randint(2, 8), rng.randint(1, 4))
        want = brute(h)
        got = checker.check(h, seq_order=False)
        assert got.ok == want, "history %d:\n%s\nbrute=%s checker=%s" % (
            i, "\n".join(checker.format_op(o) for o in
                         sorted(h, key=lambda o: o["start"])), want,
            [v.format() for v in got.violations])
        agree[want] += 1
    # both verdicts were exercised plenty
    assert agree[True] > 600 and agree[False] > 600, agree


# ---- speed -----------------------------------------------------------------

def busy_history(rng, n_ops, n_clients, unknown=0.03):
    """A correct, heavily concurrent history on one key."""
    hist, clock = [], [0.0] * n_clients
    for i in range(n_ops):
        c = rng.randrange(n_clients)
        s = clock[c] + rng.random() * 0.2
        e = s + rng.expovariate(1.0) * (8 if rng.random() < 0.05 else 1)
        clock[c] = e
        kind = rng.choice(["get", "get", "get", "put", "put", "del",
                           "put_ifabsent"])
        hist.append({"key": "k", "op": kind, "start": s, "end": e,
                     "value": None if kind in ("get", "del") else "v%d" % i,
                     "client": c, "lp": rng.uniform(s, e), "outcome": "ok"})
    state, n = None, 0
    for o in sorted(hist, key=lambda o: o["lp"]):
        if o["op"] != "get" and rng.random() < unknown:
            o["outcome"], o["end"] = "unknown", None
            if rng.random() < 0.5:
                continue
        if o["op"] == "get":
            o["value"] = state
        elif o["op"] == "put":
            state = o["value"]
        elif o["op"] == "del":
            o["deleted"] = int(state is not None)
            state = None
        elif state is None:
            state, o["result"] = o["value"], "written"
        else:
            o["result"] = "condition"
            if o["outcome"] == "unknown":
                o["outcome"], o["end"] = "ok", o["start"] + 0.1
        n += 1
    for o in hist:
        del o["lp"]
    return hist


def test_thousands_of_ops_per_key_check_in_seconds():
    # 16 clients all on one key (the suite spreads them over several)
    rng = random.Random(3)
    h = busy_history(rng, 2000, 16)
    t = time.monotonic()
    r = checker.check(h)
    assert r.ok, [v.format() for v in r.violations]
    assert time.monotonic() - t < 30
    rng = random.Random(7)
    h = busy_history(rng, 5000, 8)
    t = time.monotonic()
    r = checker.check(h)
    took = time.monotonic() - t
    assert r.ok, [v.format() for v in r.violations]
    assert r.unknown > 50
    assert took < 10, "%.1fs for 5000 ops on one key" % took
    # a corrupted read in the middle is found, with a small window
    reads = [o for o in h if o["op"] == "get" and o["value"] is not None]
    bad = reads[len(reads) // 2]
    bad["value"] = next(o["value"] for o in h if o["op"] == "put" and
                        o["outcome"] == "ok" and o["end"] < bad["start"] - 50)
    t = time.monotonic()
    r = checker.check(h)
    assert time.monotonic() - t < 20
    assert [v.kind for v in r.violations] == ["not-linearizable"]
    assert len(r.violations[0].window) < 100


def test_brute_force_itself():
    assert not brute([put(0, 1, "a"), get(2, 3, None)])
    assert brute([put(0, 3, "a"), get(1, 2, None)])
