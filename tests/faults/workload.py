"""The fault suite's clients: threads that use cairn through its routers with
redis-py and record every operation for the checker (checker.py).

Each client thread owns one redis-py `Connection` (not a `Redis` client:
that one may re-send a command after a connection error, which would hide
whether the command had been sent). One operation:

  1. connect if needed (to its router; after a failure, to the next one):
     an error here means the command was never sent -> `failed`;
  2. send the command: an error here means the router did not receive all
     of it (a RESP command is only executed once complete) -> `failed`;
  3. read the reply: a lost connection or a socket timeout here -> the
     outcome is `unknown` (the command may have been applied).

An error reply is mapped by its code word exactly as docs/API.md states:

    TRYAGAIN NOSPACE SNAPTOOBIG BUSY  nothing was written        -> failed
    ERR KEYEMPTY KEYTOOBIG TOOBIG
    INVALID NOTABLE EXISTS UNSUPPORTED  request refused, fix it  -> failed
    CONDITION                          condition not met: a definite
                                       answer that says what the key held -> ok
    TIMEOUT                            outcome unknown            -> unknown
    NOMEM IO META PROTO ENGINE CORRUPT internal failure: the API promises
                                       nothing about the write    -> unknown
    anything else (not in the API)     unknown, and counted as unexpected

Reads that fail carry no information and are dropped from the history.

Keys: a table pre-split with SPLITS into ranges; a small set of key slots,
two per range, each holding one key at a time; a slot moves on to a fresh
key ("rotates") after `rotate_after` operations, so every key's history is
a few hundred operations and the checker stays fast. Values are unique
("c<client>-<n>"), so every read names the write it saw.

Op mix: 35% KV.GET WITHSEQ, 25% KV.PUT, 10% KV.DEL, 15% KV.PUT IFSEQ (on the
last sequencer anyone saw for that key), 15% KV.PUT IFABSENT.
"""
import json
import random
import re
import threading
import time

import redis

RETRYABLE = {"TRYAGAIN", "NOSPACE", "SNAPTOOBIG", "BUSY"}
NOT_APPLIED = RETRYABLE | {"ERR", "KEYEMPTY", "KEYTOOBIG", "TOOBIG",
                           "INVALID", "NOTABLE", "EXISTS", "UNSUPPORTED"}
REQUEST_BUGS = NOT_APPLIED - RETRYABLE   # our requests never earn these
UNKNOWN = {"TIMEOUT", "NOMEM", "IO", "META", "PROTO", "ENGINE", "CORRUPT"}
DOCUMENTED = NOT_APPLIED | UNKNOWN | {"CONDITION"}


def classify_error(word):
    """docs/API.md's promise for an error reply to a write: 'failed'
    (definitely not applied) or 'unknown'."""
    if word in NOT_APPLIED:
        return "failed"
    return "unknown"


class KeySpace:
    """Rotating key slots spread over the table's ranges."""

    def __init__(self, prefixes, per_range=2, rotate_after=300):
        self.slots = []          # [prefix, generation, ops]
        for p in prefixes:
            for j in range(per_range):
                self.slots.append([p, j * 100000, 0])
        self.rotate_after = rotate_after
        self.lock = threading.Lock()
        self.used = set()
        self.last_seq = {}       # key -> last sequencer anyone saw

    def pick(self, rng):
        with self.lock:
            s = rng.choice(self.slots)
            s[2] += 1
            if s[2] > self.rotate_after:
                s[1] += 1
                s[2] = 0
            key = "%s-%06d" % (s[0], s[1])
            self.used.add(key)
            return key

    def all_keys(self):
        with self.lock:
            return sorted(self.used)


class History:
    """Thread-safe list of recorded ops, written as JSON lines."""

    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()
        self.unexpected = {}     # code word -> count (not in the API)
        self.errors = {}         # code word -> count

    def add(self, op):
        with self.lock:
            self.ops.append(op)

    def count_error(self, word):
        with self.lock:
            self.errors[word] = self.errors.get(word, 0) + 1
            if not word.startswith("conn-") and (word not in DOCUMENTED or
                                                 word in REQUEST_BUGS):
                self.unexpected[word] = self.unexpected.get(word, 0) + 1

    def write(self, path):
        with self.lock, open(path, "w") as f:
            for op in self.ops:
                f.write(json.dumps(op) + "\n")


class Conn:
    """One connection that fails over between routers (ports)."""

    def __init__(self, ports, first, timeout):
        self.ports, self.i, self.timeout = ports, first, timeout
        self.c = None

    def _new(self):
        self.c = redis.Connection(host="127.0.0.1", port=self.ports[self.i],
                                  socket_timeout=self.timeout,
                                  socket_connect_timeout=1.0)

    def drop(self, next_router=False):
        if self.c is not None:
            self.c.disconnect()
        self.c = None
        if next_router:
            self.i = (self.i + 1) % len(self.ports)

    def call(self, *args):
        """('reply', value) | ('error', ResponseError) | ('notsent', exc) |
        ('lost', exc): the steps of the module doc."""
        if self.c is None:
            self._new()
        try:
            self.c.connect()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            self.drop(next_router=True)
            return "notsent", e
        try:
            self.c.send_command(*args)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            self.drop(next_router=True)
            return "notsent", e
        try:
            return "reply", self.c.read_response()
        except redis.ResponseError as e:
            return "error", e
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            self.drop(next_router=True)
            return "lost", e


def _word(e):
    """The code word of an error reply. redis-py strips a leading "ERR "
    from the message; a first word that is not a code word means that."""
    w = str(e).split(" ", 1)[0]
    return w if re.fullmatch(r"[A-Z][A-Z_]*", w) else "ERR"


def _s(b):
    return b.decode() if isinstance(b, bytes) else b


class Client(threading.Thread):
    """One client thread (see the module doc)."""

    def __init__(self, cid, ports, table, keys, history, stop, seed,
                 t0, timeout=10.0):
        super().__init__(name="client%d" % cid, daemon=True)
        self.cid, self.table, self.keys = cid, table, keys
        self.history, self.stop = history, stop
        self.rng = random.Random(seed)
        self.conn = Conn(ports, cid % len(ports), timeout)
        self.t0 = t0
        self.n = 0

    def now(self):
        return round(time.monotonic() - self.t0, 6)

    def run(self):
        try:
            while not self.stop.is_set():
                self.one()
                self.stop.wait(self.rng.uniform(0, 0.004))
        finally:
            self.conn.drop()

    def one(self):
        rng, keys = self.rng, self.keys
        key = keys.pick(rng)
        x = rng.random()
        self.n += 1
        value = "c%d-%d" % (self.cid, self.n)
        op = {"key": key, "client": self.cid}
        if x < 0.35:
            op.update(op="get", value=None)
            args = ("KV.GET", self.table, key, "WITHSEQ")
        elif x < 0.60:
            op.update(op="put", value=value)
            args = ("KV.PUT", self.table, key, value)
        elif x < 0.70:
            op.update(op="del", value=None)
            args = ("KV.DEL", self.table, key)
        elif x < 0.85 and keys.last_seq.get(key):
            seq = keys.last_seq[key]
            op.update(op="put_ifseq", value=value, ifseq=seq)
            args = ("KV.PUT", self.table, key, value, "IFSEQ", seq)
        else:
            op.update(op="put_ifabsent", value=value)
            args = ("KV.PUT", self.table, key, value, "IFABSENT")
        op["start"] = self.now()
        kind, res = self.conn.call(*args)
        op["end"] = self.now()
        self.record(op, kind, res)

    def record(self, op, kind, res):
        is_read = op["op"] == "get"
        if kind == "reply":
            op["outcome"] = "ok"
            if is_read:
                if res is not None:
                    op["value"], op["seq"] = _s(res[0]), _s(res[1])
                    self.keys.last_seq[op["key"]] = op["seq"]
            elif op["op"] == "del":
                op["deleted"] = int(res)
            else:
                op["seq"] = _s(res)
                if op["op"] != "put":
                    op["result"] = "written"
                self.keys.last_seq[op["key"]] = op["seq"]
        elif kind == "error":
            word = _word(res)
            self.history.count_error(word)
            op["error"] = str(res)[:200]
            if word == "CONDITION" and op["op"] in ("put_ifseq",
                                                    "put_ifabsent"):
                op["outcome"], op["result"] = "ok", "condition"
            elif is_read:
                return          # a failed read says nothing
            else:
                op["outcome"] = classify_error(word)
        else:
            self.history.count_error("conn-" + kind)
            op["error"] = "%s: %s" % (kind, res)
            if is_read:
                return
            op["outcome"] = "failed" if kind == "notsent" else "unknown"
        if op["outcome"] == "unknown":
            op["end"] = None
        self.history.add(op)


def final_reads(ports, table, keys, history, t0, deadline_s=60.0):
    """After healing: read every key ever used, retrying each until it is
    answered or the deadline passes. Recorded as ordinary reads (client
    -1). Returns the keys that could not be read."""
    deadline = time.monotonic() + deadline_s
    conn = Conn(ports, 0, 10.0)
    missing = []
    for key in keys:
        while True:
            start = round(time.monotonic() - t0, 6)
            kind, res = conn.call("KV.GET", table, key, "WITHSEQ")
            end = round(time.monotonic() - t0, 6)
            if kind == "reply":
                op = {"key": key, "client": -1, "op": "get", "start": start,
                      "end": end, "outcome": "ok", "value": None}
                if res is not None:
                    op["value"], op["seq"] = _s(res[0]), _s(res[1])
                history.add(op)
                break
            if time.monotonic() > deadline:
                missing.append(key)
                break
            time.sleep(0.05)    # pacing the retries of one read
    conn.drop()
    return missing
