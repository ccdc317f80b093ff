"""Linearizability checker for the fault suite's histories (pure Python).

A history is a list of operations on keys, one JSON object per line, as the
suite's clients record them (tests/faults/run):

    {"key": "3-0007", "op": "put", "value": "c4-118", "start": 12.031,
     "end": 12.034, "outcome": "ok", "seq": "18b...", "client": 4}

    op       what it is                            result fields
    get      KV.GET key WITHSEQ                    value (null: absent), seq
    put      KV.PUT key value                      seq
    put_ifseq    KV.PUT key value IFSEQ s (ifseq)  result "written" + seq, or
    put_ifabsent KV.PUT key value IFABSENT         result "condition"
    del      KV.DEL key                            deleted: 1 or 0

    outcome  ok       a definite answer (CONDITION included: it says what
                      the key held)
             failed   definitely not applied (TRYAGAIN, a connection that
                      failed before the request was sent, ...)
             unknown  may have been applied, at any time after start, or
                      never (TIMEOUT, a connection lost after sending)

Values written are unique per key, so a read names the write it saw. Each
key is an independent register (P-compositionality: a history is
linearizable iff every key's is), checked separately:

  * Preprocessing turns definite facts into violations at once: a read of a
    value never written, of a write reported `failed` (the API promises
    TRYAGAIN wrote nothing), a read that ended before its write started, one
    value seen with two sequencers, sequencers that go backwards in real
    time (the HLC promise, seq.h). A write of unknown outcome whose value
    was read did take effect: it becomes a required op that must precede the
    first read of it. The other unknown-outcome ops are "anonymous": they may
    take effect at most once, any time after they start; unknown plain
    writes are interchangeable (they leave a value nobody reads, ANON), so
    only how many are available counts.
  * The search is Wing and Gong's, in the just-in-time form of Lowe
    ("Testing for linearizability", 2017): sweep the call and return events
    in time order keeping the set of configurations (register state, set of
    already linearized pending ops, anonymous ops still available) - the
    memo of Wing-Gong, since two paths that reach the same configuration are
    explored once. At each return the configurations are extended by
    linearizing pending ops until the returning op is among them; those
    where it cannot be are dropped; none left is a violation. Ops that
    returned are fixed in the past and forgotten, so the work is bounded by
    how many ops are concurrent, not by the history's length.
  * Pruning: a pure op (a read, an unmet condition, a delete that found
    nothing) is linearized as soon as the state allows it (doing it earlier
    never hurts); an anonymous op with no effect on the state is never
    used; of two configurations differing only in anonymous ops left, the
    one with fewer of each is dropped.
  * KV.DEL answering 1 is two steps, as the router does it: a read that saw
    a live value, then the tombstone, later in the same interval (two
    concurrent deletes may both answer 1, docs/API.md).

A counter-example is the smallest failing window: the latest point before
the failure where no op was in flight such that the ops from there to the
failure, starting from any state at all, still cannot be linearized.

    python3 checker.py HISTORY.jsonl      # prints violations, exit 1 if any
"""
import json
import sys
import time
from collections import defaultdict

INF = float("inf")


class _Sentinel:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


ANON = _Sentinel("<value of an unknown write nobody read>")
UNKNOWN = _Sentinel("<any>")  # window checks: the state before is unknown
_FAIL = _Sentinel("<fail>")

# Atom kinds: the steps a register can take. An op is one atom, except a
# KV.DEL that answered 1: a check then a write.
READ, WRITE, CAS_MET, CAS_UNMET, DEL0, DEL1_CHECK, DEL1_WRITE = range(7)
KIND_NAMES = {READ: "read", WRITE: "write", CAS_MET: "cas", CAS_UNMET:
              "cas-unmet", DEL0: "del->0", DEL1_CHECK: "del->1 (check)",
              DEL1_WRITE: "del->1 (tombstone)"}

# Anonymous groups: ("W",): unknown plain write -> ANON; ("D",): unknown
# delete -> absent; ("C", x): unknown conditional write -> ANON if state == x.


PURE = (READ, CAS_UNMET, DEL0, DEL1_CHECK)


class Atom:
    __slots__ = ("kind", "arg", "new", "start", "end", "op", "dep", "slot",
                 "done", "cls", "optional")

    def __init__(self, kind, start, end, op, arg=None, new=None, dep=None,
                 cls=None):
        self.kind, self.start, self.end, self.op = kind, start, end, op
        self.arg, self.new, self.dep = arg, new, dep
        self.slot = None
        self.done = False  # returned: fixed in the past
        # Atoms of one class have the same effect (writes of values nobody
        # reads): only the earliest-ending of them is ever tried first.
        self.cls = cls
        # Window checks: it may have taken effect before the window began.
        self.optional = False

    def copy(self):
        """A fresh copy (not yet invoked; dep is re-linked by the caller)."""
        return Atom(self.kind, self.start, self.end, self.op, self.arg,
                    self.new, None, self.cls)

    def ready(self, mask):
        """Whether the atom it depends on (if any) is linearized."""
        d = self.dep
        return d is None or d.done or mask & (1 << d.slot)

    def __repr__(self):
        return "%s(%r->%r)" % (KIND_NAMES[self.kind], self.arg, self.new)


def step(state, a):
    """The state after atom `a` in `state`, or _FAIL if it cannot happen."""
    k = a.kind
    if k == READ:
        if state is UNKNOWN or state == a.arg:
            return a.arg
        return _FAIL
    if k == WRITE:
        return a.new
    if k == CAS_MET:
        if state is UNKNOWN or state == a.arg:
            return a.new
        return _FAIL
    if k == CAS_UNMET:
        return state if state != a.arg else _FAIL
    if k == DEL0:
        return None if (state is UNKNOWN or state is None) else _FAIL
    if k == DEL1_CHECK:
        return state if state is not None else _FAIL
    # DEL1_WRITE
    return None


def anon_step(state, group):
    if group[0] == "W":
        return ANON
    if group[0] == "D":
        return None
    if state is UNKNOWN or state == group[1]:
        return ANON
    return _FAIL


class Violation:
    """One way a key's history breaks the API's promises."""

    def __init__(self, key, kind, message, ops=(), window=None, culprit=None,
                 before=None, context=()):
        self.key, self.kind, self.message = key, kind, message
        self.ops = list(ops)            # the ops involved
        self.window = window            # smallest failing window (ops)
        self.culprit = culprit          # the op that could not linearize
        self.before = before            # states possible at window start
        self.context = list(context)    # [(what, op)]: e.g. the write of
        #                                 the value read

    def format(self, t0=0.0):
        lines = ["VIOLATION key %r: %s: %s" % (self.key, self.kind,
                                               self.message)]
        ops = self.window if self.window is not None else self.ops
        if self.window is not None:
            lines.append("  smallest failing window: %d ops, starting from "
                         "state %s" % (len(ops), self.before))
        for op in sorted(ops, key=lambda o: o["start"]):
            lines.append(("  >> " if op is self.culprit else "     ") +
                         format_op(op, t0))
        for what, op in self.context:
            lines.append("  context: %s:" % what)
            lines.append("     " + format_op(op, t0))
        return "\n".join(lines)


def format_op(op, t0=0.0):
    end = op.get("end")
    end_s = "%10.3f" % ((end - t0) * 1000) if end is not None else "       ..."
    res = ""
    if op["outcome"] != "ok":
        res = ""
    elif op["op"] == "get":
        res = "-> %r" % op.get("value")
    elif op["op"] == "del":
        res = "-> %s" % op.get("deleted")
    elif op["op"] in ("put_ifseq", "put_ifabsent"):
        res = "-> %s" % op.get("result")
    val = ""
    if op["op"] != "get":
        val = repr(op.get("value")) if op["op"] != "del" else ""
    if op["op"] == "put_ifseq":
        val += " IFSEQ %s" % (op.get("ifseq") or "")[:12]
    err = (" (%s)" % op["error"][:60]) if op.get("error") else ""
    return "%10.3f %s ms  c%-3s %-12s %-24s %-16s %s%s" % (
        (op["start"] - t0) * 1000, end_s, op.get("client", "?"), op["op"],
        val, res, op["outcome"], err)


def _observed_values(ops, seq_value):
    """value -> the earliest end among ops that saw that value take effect
    (a read of it, a met IFSEQ on its sequencer)."""
    seen = {}
    for op in ops:
        if op["outcome"] != "ok":
            continue
        v = None
        if op["op"] == "get" and op.get("value") is not None:
            v = op["value"]
        elif op["op"] == "put_ifseq" and op.get("result") == "written":
            v = seq_value.get(op.get("ifseq"))
        if v is not None and (v not in seen or op["end"] < seen[v][0]):
            seen[v] = (op["end"], op)
    return seen


def _seq_checks(key, ops, out, order=True):
    """One value, one sequencer; sequencers never go back in real time."""
    seq_value, value_seq = {}, {}
    for op in ops:
        s = op.get("seq")
        if op["outcome"] != "ok" or not s or op.get("value") is None:
            continue
        v = op["value"]
        if value_seq.get(v, s) != s or seq_value.get(s, v) != v:
            out.append(Violation(key, "sequencer", "value %r seen with "
                                 "sequencers %s and %s" % (
                                     v, value_seq.get(v), s), [op]))
        value_seq[v] = s
        seq_value[s] = v
    # a = write acked or read with a seq, ended before b started: seq(b)
    # >= seq(a), strictly if b is a write.
    if not order:
        return seq_value
    timed = [op for op in ops if op["outcome"] == "ok" and op.get("seq")]
    by_end = sorted(timed, key=lambda o: o["end"])
    by_start = sorted(timed, key=lambda o: o["start"])
    best, i = None, 0
    for b in by_start:
        while i < len(by_end) and by_end[i]["end"] < b["start"]:
            if best is None or by_end[i]["seq"] > best["seq"]:
                best = by_end[i]
            i += 1
        if best is None:
            continue
        is_write = b["op"] != "get"
        if b["seq"] < best["seq"] or (is_write and b["seq"] == best["seq"]):
            out.append(Violation(
                key, "sequencer-order", "sequencer %s is below %s, which "
                "completed before it started (the HLC must keep a key's "
                "sequencers increasing)" % (b["seq"], best["seq"]),
                [best, b]))
            break
    return seq_value


def _prepare(key, ops, out, seq_order=True):
    """Turn a key's ops into atoms and anonymous ops; definite violations go
    to `out`. Returns (atoms, anon list of (start, group, op))."""
    seq_value = _seq_checks(key, ops, out, seq_order)
    writes = {}
    for op in ops:
        if op["op"] != "get" and op["op"] != "del":
            if op["value"] in writes:
                raise ValueError("key %r: value %r written twice: values "
                                 "must be unique" % (key, op["value"]))
            writes[op["value"]] = op
    seen = _observed_values(ops, seq_value)
    for v, (end, reader) in seen.items():
        w = writes.get(v)
        if w is None:
            out.append(Violation(key, "phantom", "read %r, which no one "
                                 "wrote" % v, [reader]))
        elif w["outcome"] == "failed":
            out.append(Violation(
                key, "failed-write-applied", "the write of %r answered %s "
                "(definitely not applied) but was read" % (
                    v, (w.get("error") or "failed").split(" ")[0]),
                [w, reader]))
        elif end < w["start"]:
            out.append(Violation(key, "read-before-write", "%r was read "
                                 "before its write started" % v, [w, reader]))
    # Values nobody reads or names in an IFSEQ are interchangeable: writing
    # any of them leaves the register holding "a value nobody reads".
    referenced = set(seen)
    for op in ops:
        if op["op"] == "put_ifseq" and op.get("ifseq") in seq_value:
            referenced.add(seq_value[op["ifseq"]])

    def new_state(v):
        return v if v in referenced else ANON

    atoms, anon = [], []
    for op in ops:
        o, outcome, start = op["op"], op["outcome"], op["start"]
        if outcome == "failed":
            continue
        end = op["end"] if outcome == "ok" else INF
        if outcome == "unknown":
            v = op.get("value")
            if o != "del" and v in seen:
                end = max(seen[v][0], start)  # it happened, before that read
            else:
                if o == "put":
                    anon.append((start, ("W",), op))
                elif o == "del":
                    anon.append((start, ("D",), op))
                elif o == "put_ifabsent":
                    anon.append((start, ("C", None), op))
                elif o == "put_ifseq" and op.get("ifseq") in seq_value:
                    anon.append((start, ("C", seq_value[op["ifseq"]]), op))
                # an IFSEQ on a sequencer nobody saw can never apply
                continue
        if o == "get":
            atoms.append(Atom(READ, start, end, op, arg=op.get("value")))
        elif o == "put":
            nv = new_state(op["value"])
            atoms.append(Atom(WRITE, start, end, op, new=nv,
                              cls=("W",) if nv is ANON else None))
        elif o == "del":
            if outcome == "unknown":
                continue  # handled above
            if op.get("deleted"):
                chk = Atom(DEL1_CHECK, start, end, op)
                atoms += [chk, Atom(DEL1_WRITE, start, end, op, dep=chk,
                                    cls=("D",))]
            else:
                atoms.append(Atom(DEL0, start, end, op))
        else:
            if o == "put_ifabsent":
                x = None
            else:
                x = seq_value.get(op.get("ifseq"), ("no value has sequencer",
                                                   op.get("ifseq")))
            if outcome == "unknown" or op.get("result") == "written":
                nv = new_state(op["value"])
                atoms.append(Atom(CAS_MET, start, end, op, arg=x, new=nv,
                                  cls=("C", x) if nv is ANON else None))
            else:
                atoms.append(Atom(CAS_UNMET, start, end, op, arg=x))
    return atoms, anon


class _Sweep:
    """The just-in-time Wing-Gong search over one key's atoms."""

    def __init__(self, atoms, anon, initial, groups, counts0):
        self.atoms, self.anon = atoms, anon
        self.groups = groups
        self.gindex = {g: i for i, g in enumerate(groups)}
        self.configs = {(initial, 0, counts0)}
        self.pending = {}       # slot -> atom
        self.free = []
        self.next_slot = 0
        self.max_configs = 1
        self.failed_at = None   # the atom that could not be linearized
        self.before = None      # configs before that

    def _normalize(self, state, mask, cnt):
        """Linearize every pending pure op the state allows right now."""
        for slot, a in self.pending.items():
            b = 1 << slot
            if mask & b or a.kind not in PURE or not a.ready(mask):
                continue
            ns = step(state, a)
            if ns is state or (ns is not _FAIL and ns == state):
                mask |= b
        return (state, mask, cnt)

    def _enables(self, st, ns, mask, cnt, used, pending):
        """Whether moving from st to ns (an anonymous op) makes a pending op
        or another anonymous op possible that was not. If not, the
        anonymous op can always be postponed until it does (it stays
        available), so it is not tried now."""
        for slot, p in pending:
            if not mask & (1 << slot) and p.ready(mask) and \
                    step(st, p) is _FAIL and step(ns, p) is not _FAIL:
                return True
        for i, g in enumerate(self.groups):
            if (cnt[i] > 1 or (cnt[i] == 1 and i != used)) and \
                    anon_step(st, g) is _FAIL and anon_step(ns, g) is not _FAIL:
                return True
        return False

    def _invoke(self, a):
        if self.free:
            a.slot = self.free.pop()
        else:
            a.slot = self.next_slot
            self.next_slot += 1
        self.pending[a.slot] = a
        self.configs = {self._normalize(*c) for c in self.configs}

    def _anon_invoke(self, group):
        i = self.gindex[group]
        self.configs = {(s, m, c[:i] + (c[i] + 1,) + c[i + 1:])
                        for s, m, c in self.configs}

    def _return(self, a):
        target = 1 << a.slot
        out = set()
        seen = set(self.configs)
        stack = list(self.configs)
        pending = sorted(self.pending.items(), key=lambda sp: (sp[1].end,
                                                                sp[0]))
        groups = self.groups
        while stack:
            st, mask, cnt = stack.pop()
            if mask & target:
                out.add((st, mask & ~target, cnt))
                continue
            tried = set()
            for slot, p in pending:
                b = 1 << slot
                if mask & b or not p.ready(mask):
                    continue
                if p.cls is not None:
                    # exchange argument: of interchangeable atoms, taking
                    # the one that must be done soonest is never worse
                    if p.cls in tried:
                        continue
                    tried.add(p.cls)
                ns = step(st, p)
                if ns is _FAIL:
                    continue
                c2 = self._normalize(ns, mask | b, cnt)
                if c2 not in seen:
                    seen.add(c2)
                    stack.append(c2)
            for i, n in enumerate(cnt):
                if n == 0:
                    continue
                ns = anon_step(st, groups[i])
                if ns is _FAIL or ns is st or ns == st:
                    continue  # no effect: never worth using
                if not self._enables(st, ns, mask, cnt, i, pending):
                    continue  # can wait until it enables something
                c2 = self._normalize(ns, mask, cnt[:i] + (n - 1,) + cnt[i + 1:])
                if c2 not in seen:
                    seen.add(c2)
                    stack.append(c2)
        self.max_configs = max(self.max_configs, len(seen))
        if a.optional:
            out |= {(st, m & ~target, c) for st, m, c in self.configs}
        del self.pending[a.slot]
        self.free.append(a.slot)
        a.done = True
        if not out:
            self.failed_at = a
            self.before = self.configs
            self.configs = set()
            return False
        self.configs = _prune(out)
        return True

    def run(self, stop_at=INF):
        """Sweep events up to time `stop_at`; False at the first atom that
        cannot be linearized (self.failed_at)."""
        events = []
        for a in self.atoms:
            events.append((a.start, 0, 0, a))
            if a.end != INF:
                events.append((a.end, 1, 1 if a.kind == DEL1_WRITE else 0, a))
        for start, group, _op in self.anon:
            events.append((start, 0, 0, group))
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        for t, typ, _o, x in events:
            if t > stop_at:
                break
            if typ == 0:
                if isinstance(x, Atom):
                    self._invoke(x)
                else:
                    self._anon_invoke(x)
            elif not self._return(x):
                return False
        return True


def _prune(configs):
    """Of configs equal but for anonymous ops left, keep the undominated."""
    by = defaultdict(list)
    for s, m, c in configs:
        by[(s, m)].append(c)
    out = set()
    for (s, m), cs in by.items():
        if len(cs) == 1:
            out.add((s, m, cs[0]))
            continue
        cs.sort(reverse=True)
        kept = []
        for c in cs:
            if not any(all(x >= y for x, y in zip(k, c)) for k in kept):
                kept.append(c)
        for c in kept:
            out.add((s, m, c))
    return out


def _groups(anon):
    gs = []
    for _s, g, _o in anon:
        if g not in gs:
            gs.append(g)
    return gs


def _window(key, atoms, anon, failed):
    """The smallest failing window before `failed`: (ops, state at its
    start).

    A window from time T holds the ops still running at T or started after
    it, up to the failure. Ops that ended before T were linearized before T
    and are dropped; so the state at T can be anything, and an op running
    at T may already have taken effect before T (it is optional). That
    over-approximates what the full history allows, so a window that fails
    proves the history fails; the later T, the more it allows, so the
    latest failing T is found by bisection."""
    stop = failed.end
    inside = sorted((a for a in atoms if a.start <= stop),
                    key=lambda a: a.start)
    cuts = sorted({a.start for a in inside})
    groups = _groups(anon)

    def window(t):
        return [a for a in inside if a.end >= t]

    def fails(ci):
        t = cuts[ci]
        sub = [a.copy() for a in window(t)]
        by_op = {}
        for a in sub:
            a.optional = a.start < t
            # dependencies (del->1) are between atoms of one op: re-link
            if a.kind == DEL1_CHECK:
                by_op[id(a.op)] = a
            elif a.kind == DEL1_WRITE:
                a.dep = by_op[id(a.op)]
        cnt = tuple(sum(1 for s, g, _ in anon if g == grp and s <= stop)
                    for grp in groups)
        sw = _Sweep(sub, [], UNKNOWN, groups, cnt)
        return not sw.run(stop)

    # From the first cut (the key's first op, state absent) the check is
    # the one that failed; find the latest cut that still fails.
    lo, hi = 0, len(cuts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fails(mid):
            lo = mid
        else:
            hi = mid - 1
    t = cuts[lo]
    ops, seen = [], set()
    for a in window(t):
        if id(a.op) not in seen:
            seen.add(id(a.op))
            ops.append(a.op)
    for s, _g, op in anon:
        if t <= s <= stop:
            ops.append(op)
    if lo == 0:
        return ops, "absent (the key's first op)"
    return ops, "any (ops running at the start may already have applied)"


def check_key(key, ops, seq_order=True, explain=True):
    """Violations of one key's history (a list, empty if linearizable), and
    stats. seq_order=False skips the sequencer order rule (histories whose
    sequencers are made up)."""
    out = []
    atoms, anon = _prepare(key, ops, out, seq_order)
    if out:
        return out, {"configs": 0}
    groups = _groups(anon)
    sw = _Sweep(atoms, anon, None, groups, tuple(0 for _ in groups))
    if not sw.run():
        if not explain:
            return [Violation(key, "not-linearizable", "")], {}
        a = sw.failed_at
        window, before = _window(key, atoms, anon, a)
        states = sorted({repr(st) for st, _m, _c in sw.before})
        context = []
        v = a.op.get("value") if a.op["op"] == "get" else None
        if v is not None:
            w = next((o for o in ops if o["op"] != "get" and o["op"] != "del"
                      and o.get("value") == v), None)
            if w is not None and all(w is not o for o in window):
                context.append(("the write of the value read", w))
        # Writes reported as not applied near the failure: if one of them
        # having taken effect explains the history, that is the bug.
        w_start = min((o["start"] for o in window), default=a.op["start"])
        failed = [o for o in ops if o["outcome"] == "failed" and
                  o["op"] != "get" and o["start"] <= a.end and
                  (o.get("end") or INF) >= w_start - 1.0]
        explained = None
        for f in failed[:20]:
            f2 = dict(f, outcome="unknown", end=None)
            trial = [f2 if o is f else o for o in ops]
            if not check_key(key, trial, seq_order, explain=False)[0]:
                explained = f
                break
        for f in failed:
            context.append(("reported not applied" + (
                " - AND THE HISTORY IS LINEARIZABLE IF IT WAS APPLIED"
                if f is explained else ""), f))
        msg = ("no order of the ops explains the one marked >> (the key could "
               "only hold %s just before it)" % ", ".join(states)[:300])
        if explained is not None:
            msg += "; explained if the %s answered %s was applied" % (
                explained["op"], (explained.get("error") or "").split(" ")[0])
        out.append(Violation(key, "not-linearizable", msg, window=window,
                             culprit=a.op, before=before, context=context))
    return out, {"configs": sw.max_configs}


class Result:
    def __init__(self):
        self.violations = []
        self.ops = 0
        self.keys = 0
        self.unknown = 0
        self.failed = 0
        self.seconds = 0.0
        self.max_configs = 0

    @property
    def ok(self):
        return not self.violations

    def summary(self):
        return ("%d ops on %d keys checked in %.2fs (%d unknown outcome, %d "
                "not applied), %d violation(s)" % (
                    self.ops, self.keys, self.seconds, self.unknown,
                    self.failed, len(self.violations)))


def check(history, seq_order=True):
    """Check a whole history (list of op dicts). Returns a Result."""
    t = time.monotonic()
    res = Result()
    by_key = defaultdict(list)
    for op in history:
        by_key[op["key"]].append(op)
        res.ops += 1
        res.unknown += op["outcome"] == "unknown"
        res.failed += op["outcome"] == "failed"
    res.keys = len(by_key)
    for key in sorted(by_key):
        v, stats = check_key(key, by_key[key], seq_order)
        res.violations += v
        res.max_configs = max(res.max_configs, stats["configs"])
    res.seconds = time.monotonic() - t
    return res


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    if len(argv) != 2:
        print("usage: checker.py HISTORY.jsonl", file=sys.stderr)
        return 2
    hist = load(argv[1])
    res = check(hist)
    t0 = min((op["start"] for op in hist), default=0.0)
    for v in res.violations:
        print(v.format(t0))
    print(res.summary())
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
