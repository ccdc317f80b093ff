"""What every cluster test needs, in one place: the `cairn` binary under
test, free loopback ports, waiting on a condition with a deadline, child
processes ended by PID, and a real etcd.

Everything runs on loopback with free ports and temporary directories;
every process started through Procs is remembered and ended by PID, never
by name. Waits poll a condition until a deadline, never a plain sleep.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def cairn_bin():
    """The `cairn` binary under test: $CAIRN_BIN, else the first build
    found."""
    env = os.environ.get("CAIRN_BIN")
    if env:
        return env
    for d in ("build", "build-dev", "build-router", "build-asan"):
        p = os.path.join(ROOT, d, "cairn")
        if os.path.exists(p):
            return p
    return os.path.join(ROOT, "build", "cairn")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessExited(AssertionError):
    """A process waited for has exited: waiting longer is pointless."""


def wait_for(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns a true value; fail after `timeout` s.

    An exception from cond() means "not yet" (the thing waited for is not
    up), except an AssertionError (ProcessExited included), which says it
    never will be and ends the wait at once."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except AssertionError:
            raise
        except Exception as e:
            last = e
        time.sleep(interval)
    raise TimeoutError("timed out after %ss waiting for %s (last error: %r)"
                       % (timeout, what, last))


def alive(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Procs:
    """Child processes, each with its output in a log file, ended by PID
    (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, env=None):
        """Start `argv` with its output in `log`; `env`: variables added to
        this process's environment."""
        with open(log, "ab") as f:
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL,
                                 env=dict(os.environ, **env) if env else None)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs = []


def _b64(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.b64encode(b).decode()


class Etcd:
    """A real one-member etcd 3.4 (Debian `etcd-server`) on free ports under
    `workdir`, and a small client of its v3 JSON gateway. start() again
    after kill() restarts it on the same ports and data."""

    def __init__(self, workdir, procs=None):
        self.workdir = workdir
        self.procs = procs or Procs()
        self.proc = None
        self.started = False
        self._pick_ports()

    def _pick_ports(self):
        self.port, peer = free_port(), free_port()
        while peer == self.port:
            peer = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        peer_url = "http://127.0.0.1:%d" % peer
        self.argv = [
            "etcd", "--name", "t", "--data-dir",
            os.path.join(self.workdir, "etcd"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", "t=" + peer_url,
        ]

    def _serving(self):
        if self.proc.poll() is not None:
            with open(self.log, errors="replace") as f:
                raise ProcessExited("etcd exited with %s:\n%s" % (
                    self.proc.returncode, f.read()[-2000:]))
        return self.call("/v3/kv/range", {"key": _b64(b"/probe")})

    def start(self):
        """Start etcd and wait until it serves. A free port can be taken by
        someone else between free_port() and etcd's bind: on the first
        start (nothing depends on the ports yet) that is retried on new
        ports; a restart keeps its ports, as the cluster remembers them."""
        self.log = os.path.join(self.workdir, "etcd.log")
        for attempt in range(3):
            self.proc = self.procs.start(self.argv, self.log)
            try:
                wait_for(self._serving, 60, "etcd")
                self.started = True
                return self
            except ProcessExited:
                with open(self.log, errors="replace") as f:
                    in_use = "address already in use" in f.read()
                if self.started or not in_use or attempt == 2:
                    raise
                # a bootstrap that never served: start over, new ports
                shutil.rmtree(os.path.join(self.workdir, "etcd"),
                              ignore_errors=True)
                self._pick_ports()
        return self

    def kill(self):
        self.procs.stop(self.proc, signal.SIGKILL)

    def stop(self):
        if self.proc is not None:
            self.kill()

    def call(self, path, body):
        req = urllib.request.Request(self.url + path,
                                     json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def put(self, key, value):
        """Blind write: tests only (stand-ins for what a node writes)."""
        self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def _kvs(self, key, prefix):
        k = key.encode() if isinstance(key, str) else key
        body = {"key": _b64(k)}
        if prefix:
            body["range_end"] = _b64(k[:-1] + bytes([k[-1] + 1]))
        return [(base64.b64decode(kv["key"]),
                 base64.b64decode(kv.get("value", "")))
                for kv in self.call("/v3/kv/range", body).get("kvs", [])]

    def get(self, key):
        """The value of `key` (bytes), or None."""
        kvs = self._kvs(key, False)
        return kvs[0][1] if kvs else None

    def get_prefix(self, prefix):
        """{key: value} (bytes) of every key under `prefix`."""
        return dict(self._kvs(prefix, True))

    def range(self, key, prefix=False):
        """{key: value} (str) of `key`, or of every key under it."""
        return {k.decode(): v.decode() for k, v in self._kvs(key, prefix)}
