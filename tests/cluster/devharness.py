"""`cairn dev` as a test fixture: one `cairn dev` process on a free port
layout in a temporary directory, its output in files, its children ended by
PID (test_dev.py, test_ops_dashboard.py)."""
import os
import random
import signal
import socket
import subprocess
import tempfile

import pytest

from harness import alive, cairn_bin, wait_for

CAIRN = cairn_bin()
START_DEADLINE = 120  # cairn dev's own start deadline is 60 s per step
STOP_DEADLINE = 30
# router, etcd, nodes 1-8, controller's dashboard, nodes' and router's
# /metrics (cmd_dev.c)
DEV_PORT_OFFSETS = (0, 10, 11) + tuple(range(21, 29)) + tuple(range(30, 40))


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_low():
    """The lowest port the kernel hands out for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def dev_port():
    """A router port whose whole cairn dev port layout is free, below the
    kernel's ephemeral range: a port there that is free now can still be
    taken by any process's outgoing connection (etcd's gateway dials
    itself) before cairn dev's child binds it."""
    top = max(ephemeral_low(), 20000 + 1000) - max(DEV_PORT_OFFSETS) - 1
    for _ in range(200):
        base = random.randrange(20000, top)
        if all(port_free(base + off) for off in DEV_PORT_OFFSETS):
            return base
    raise RuntimeError("no free port layout for cairn dev")


def ours(pid, tmp):
    """Whether `pid` is a process of this test (its command line names our
    temporary directory), so that cleanup never hits a recycled PID."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return tmp.encode() in f.read()
    except OSError:
        return False


class Dev:
    """One `cairn dev` process with its output in files."""

    def __init__(self, tmp, port):
        self.tmp, self.port = tmp, port
        self.dir = os.path.join(tmp, "data")
        self.proc = None
        self.runs = 0

    def start(self, extra=()):
        self.runs += 1
        self.out = os.path.join(self.tmp, "dev%d.out" % self.runs)
        self.err = os.path.join(self.tmp, "dev%d.err" % self.runs)
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(
                [CAIRN, "dev", "--dir", self.dir, "--port", str(self.port)] +
                list(extra), stdout=o, stderr=e, stdin=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("cairn dev exited with %s:\n%s" % (
                    self.proc.returncode, self.logs()))
            with open(self.out) as f:
                return "ready: redis-cli -p %d" % self.port in f.read()
        wait_for(ready, START_DEADLINE, "cairn dev to print ready", 0.1)

    def url(self, what):
        """An address `cairn dev` printed: what="dashboard" ->
        "http://127.0.0.1:P/"."""
        with open(self.out) as f:
            for line in f:
                if line.startswith(what + ": "):
                    return line.split()[1]
        raise AssertionError("cairn dev printed no %s line:\n%s" % (
            what, self.logs()))

    def logs(self):
        text = ""
        for p in (self.out, self.err):
            with open(p, errors="replace") as f:
                text += f.read()
        return text

    def child_pids(self):
        pids = {}
        for name in os.listdir(self.dir):
            if name.endswith(".pid"):
                with open(os.path.join(self.dir, name)) as f:
                    pids[name[:-4]] = int(f.read().strip())
        return pids

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(STOP_DEADLINE)

    def cleanup(self):
        """End whatever is left, by PID: cairn dev, then its children."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if os.path.isdir(self.dir):
            for pid in self.child_pids().values():
                if alive(pid) and ours(pid, self.tmp):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def dev():
    with tempfile.TemporaryDirectory(prefix="cairn-dev-") as tmp:
        d = Dev(tmp, dev_port())
        try:
            yield d
        finally:
            d.cleanup()


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")


def assert_clean_logs(d):
    """No child reported a sanitizer error (matters with an ASan build)."""
    for name in os.listdir(d):
        if name.endswith(".log") and name != "etcd.log":
            with open(os.path.join(d, name), errors="replace") as f:
                text = f.read()
            for mark in SANITIZER_MARKS:
                assert mark not in text, "%s:\n%s" % (name, text[-3000:])
