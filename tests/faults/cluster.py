"""The cluster a fault-suite run works on, and the levers the nemesis pulls.

One real etcd, N `cairn node` processes, one `cairn controller` and one or
two `cairn router`s, all on loopback with free ports under one temporary
directory (tests/cluster/harness.py: Etcd, Procs, free_port, wait_for).

What this adds to the cluster tests' harness:

  * Every process is a `Proc` that knows whether it is meant to be up: the
    nemesis marks a process down before it kills it, so a process found
    dead while it should be up is a crash (`Cluster.crashes`), reported
    with its exit status and the tail of its log, then restarted so the run
    goes on.
  * Node i runs as its own system user `cairnf<i>` (created with useradd if
    missing; its data directory is chowned to it), so that nftables can
    tell the nodes' traffic apart: `Net` keeps one table of ours,
    `inet cairn_faults_<pid>`, that marks every connection with the node
    that dialled it (ct mark, from `meta skuid`) and, to partition, drops
    both directions of every connection between two groups of nodes by
    (dialler mark, original destination port). Routers, the controller and
    etcd run as root and are never cut off: a partitioned leader still
    hears from routers, so stale leaders get tested. The table is deleted
    when the run ends, on every exit path (`Cluster.close`, atexit).
  * Optionally one node's data directory is a small tmpfs of our own
    (mounted here, unmounted at the end) that `fill_disk` fills with a
    filler file and `free_disk` empties again; that node keeps a reserve
    of `tmpfs_reserve_mb` against a full disk (diskguard.h).
  * `leader(range)` asks each live node's metrics (cairn RPC) who leads.

Every process is ended by PID, every wait has a deadline.
"""
import atexit
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))

from cairn_rpc import Client, RpcError  # noqa: E402
from harness import (Etcd, ProcessExited, Procs, cairn_bin,  # noqa: E402
                     free_port, wait_for)

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")
NFT_TABLE_PREFIX = "cairn_faults_"
MARK_BASE = 0xCAF00000
TMP_PREFIX = "cairn-faults-"


def _log(msg):
    print("  [%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---- processes ----------------------------------------------------------

class Proc:
    """One managed process: argv is rebuilt by `make_argv` at each start,
    output appended to `log`."""

    def __init__(self, cluster, name, make_argv, log, user=None,
                 ready=None):
        self.cluster, self.name = cluster, name
        self.make_argv, self.log, self.user = make_argv, log, user
        self.ready = ready          # callable: True once it serves
        self.proc = None
        self.want_up = False        # False: the nemesis took it down
        self.paused = False
        self.starts = 0

    def start(self, extra=(), timeout=30):
        argv = self.make_argv() + list(extra)
        with open(self.log, "ab") as f:
            f.write(("=== start %d: %s\n" % (self.starts + 1,
                                            " ".join(argv))).encode())
            f.flush()
            kw = {}
            if self.user:
                kw = {"user": self.user, "group": self.user,
                      "extra_groups": []}
            self.proc = subprocess.Popen(argv, stdout=f,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, **kw)
        self.cluster.procs.procs.append(self.proc)
        self.starts += 1
        self.want_up, self.paused = True, False
        if self.ready:
            wait_for(self._ready, timeout, "%s to serve" % self.name, 0.05)

    def _ready(self):
        if self.proc.poll() is not None:
            raise ProcessExited("%s exited with %s:\n%s" % (
                self.name, self.proc.returncode, self.tail()))
        return self.ready()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9 (also of a paused process)."""
        self.want_up = False
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.paused = False

    def term(self, timeout=15):
        """SIGTERM and wait; SIGKILL if it does not stop. Returns the exit
        status, or None if it had to be killed."""
        self.want_up = False
        if not self.alive():
            return self.proc.returncode if self.proc else 0
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def pause(self):
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self):
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def tail(self, n=3000):
        try:
            with open(self.log, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


# ---- users, nftables, tmpfs ----------------------------------------------

def ensure_user(name):
    """The uid of system user `name`, created if missing."""
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name).pw_uid


def _nft(script):
    r = subprocess.run(["nft", "-f", "-"], input=script, text=True,
                       capture_output=True, timeout=20)
    if r.returncode != 0:
        raise RuntimeError("nft failed: %s\n%s" % (r.stderr, script))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def clean_stale():
    """Remove what an earlier run killed without cleanup left: our nftables
    tables and tmpfs mounts whose owning process is gone (their names carry
    its pid)."""
    r = subprocess.run(["nft", "list", "tables"], capture_output=True,
                       text=True)
    for line in r.stdout.splitlines():
        m = re.match(r"table inet (%s(\d+))$" % NFT_TABLE_PREFIX, line.strip())
        if m and not _pid_alive(int(m.group(2))):
            subprocess.run(["nft", "delete", "table", "inet", m.group(1)])
    with open("/proc/mounts") as f:
        for line in f:
            mnt = line.split()[1]
            m = re.search(r"/%s(\d+)-" % TMP_PREFIX, mnt)
            if line.startswith("cairn-faults ") and m and \
                    not _pid_alive(int(m.group(1))):
                subprocess.run(["umount", "-l", mnt])


class Net:
    """Partitions between nodes with nftables (see the module doc)."""

    def __init__(self, nodes):
        self.table = "%s%d" % (NFT_TABLE_PREFIX, os.getpid())
        self.nodes = nodes
        marks = "".join(
            "  ct state new meta skuid %d ct mark set 0x%x\n" % (
                n.uid, MARK_BASE + n.id) for n in nodes)
        _nft("table inet %s {\n chain part {\n }\n chain out {\n"
             "  type filter hook output priority 0; policy accept;\n%s"
             "  jump part\n }\n}\n" % (self.table, marks))
        self.active = None

    def partition(self, groups):
        """Cut every connection between nodes of different groups (lists of
        nodes); nodes in no group keep talking to everyone."""
        rules = []
        for gi, g in enumerate(groups):
            for hj, h in enumerate(groups):
                if gi == hj:
                    continue
                for a in g:
                    for b in h:
                        rules.append(
                            "add rule inet %s part ct mark 0x%x meta l4proto "
                            "tcp ct original proto-dst %d drop\n" % (
                                self.table, MARK_BASE + a.id, b.port))
        _nft("flush chain inet %s part\n%s" % (self.table, "".join(rules)))
        self.active = [[n.id for n in g] for g in groups]

    def heal(self):
        _nft("flush chain inet %s part\n" % self.table)
        self.active = None

    def close(self):
        subprocess.run(["nft", "delete", "table", "inet", self.table],
                       capture_output=True)


# ---- the cluster ----------------------------------------------------------

class Node(Proc):
    def __init__(self, cluster, nid, node_args):
        self.id = nid
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.user = "cairnf%d" % nid
        self.uid = ensure_user(self.user)
        self.dir = os.path.join(cluster.dir, "n%d" % nid)
        self.tmpfs = False
        self.clock_offset_ms = 0
        self.node_args = list(node_args)
        super().__init__(cluster, "node%d" % nid, self._argv,
                         os.path.join(cluster.dir, "n%d.log" % nid),
                         user=self.user, ready=self._ping)

    def _argv(self):
        argv = [self.cluster.bin, "node", "--id", str(self.id), "--listen",
                self.addr, "--dir", self.dir, "--etcd", self.cluster.etcd.url]
        argv += self.node_args
        if self.clock_offset_ms:
            argv += ["--clock-offset-ms", str(self.clock_offset_ms)]
        return argv

    def _ping(self):
        with Client(self.addr, timeout=1) as c:
            c.ping()
        return True

    def metrics(self, rng, timeout=0.5):
        with Client(self.addr, timeout=timeout) as c:
            return c.metrics(rng)


class Cluster:
    """etcd + nodes + controller + routers; see the module doc."""

    def __init__(self, n_nodes=3, n_routers=2, tmpfs_node=None,
                 tmpfs_mb=256, tmpfs_reserve_mb=12, deadline_ms=3000,
                 keep=False, node_args=None):
        clean_stale()
        self.bin = cairn_bin()
        self.dir = tempfile.mkdtemp(prefix="%s%d-" % (TMP_PREFIX, os.getpid()))
        os.chmod(self.dir, 0o755)
        self.keep = keep
        self.procs = Procs()
        self.crashes = []           # (time, name, status, log tail)
        self.net = None
        self.mounts = []
        self.closed = False
        self.disk_full = False      # the tmpfs node's disk is being filled
        self.last_fault = None      # the nemesis's latest fault kind
        atexit.register(self.close)
        self.etcd = Etcd(self.dir, self.procs)
        if node_args is None:  # the suite's quick timeouts
            node_args = ["--election-ms", "300", "--heartbeat-ms", "50"]
        # The tmpfs node keeps a reserve its small disk can hold (the
        # default is capped at a tenth of the disk anyway). The disk must
        # also hold what RocksDB preallocates for its WALs: 115 MiB with
        # `lsm` tables (measured: raftlog 40, rocks 75).
        self.nodes = [Node(self, i + 1, node_args + (
            ["--disk-reserve-mb", str(tmpfs_reserve_mb)]
            if tmpfs_node == i + 1 else [])) for i in range(n_nodes)]
        for nd in self.nodes:
            os.makedirs(nd.dir)
            if tmpfs_node == nd.id:
                subprocess.run(["mount", "-t", "tmpfs", "-o",
                                "size=%dm,mode=0755" % tmpfs_mb,
                                "cairn-faults", nd.dir], check=True)
                self.mounts.append(nd.dir)
                nd.tmpfs = True
            shutil.chown(nd.dir, nd.user, nd.user)
        self.ctl = Proc(self, "controller", lambda: [
            self.bin, "controller", "--etcd", self.etcd.url, "--id", "ctl",
            "--lease-ttl", "2", "--interval-ms", "200"],
            os.path.join(self.dir, "controller.log"))
        self.routers = []
        for i in range(n_routers):
            port = free_port()
            r = Proc(self, "router%d" % (i + 1), lambda port=port: [
                self.bin, "router", "--listen", "127.0.0.1:%d" % port,
                "--etcd", self.etcd.url, "--deadline-ms", str(deadline_ms)],
                os.path.join(self.dir, "router%d.log" % (i + 1)),
                ready=lambda port=port: _resp_ping(port))
            r.port = port
            self.routers.append(r)

    # -- lifecycle --
    def start(self):
        self.etcd.start()
        self.etcd.want_up = True
        self.net = Net(self.nodes)
        for nd in self.nodes:
            nd.start()
        wait_for(lambda: len(self.etcd.get_prefix(b"/cairn/live/")) >=
                 len(self.nodes), 30, "every node registered in etcd", 0.1)
        self.ctl.start()
        for r in self.routers:
            r.start()
        return self

    def all_procs(self):
        return self.nodes + [self.ctl] + self.routers

    def etcd_up(self):
        return self.etcd.proc is not None and self.etcd.proc.poll() is None

    def restart_etcd(self):
        self.etcd.start()

    def check_crashes(self, restart=True):
        """Record every process found dead while it should be up (and
        restart it, so the run goes on). Returns the new crashes."""
        new = []
        for p in self.all_procs():
            if p.want_up and p.proc is not None and p.proc.poll() is not None:
                rc = p.proc.returncode
                new.append({"t": time.monotonic(), "name": p.name,
                            "status": rc, "tail": p.tail(4000),
                            "last_fault": self.last_fault})
                p.want_up = False
                _log("CRASH: %s exited with status %s" % (p.name, rc))
        if self.etcd.started and self.etcd.proc.poll() is not None and \
                getattr(self.etcd, "want_up", True):
            new.append({"t": time.monotonic(), "name": "etcd",
                        "last_fault": self.last_fault,
                        "status": self.etcd.proc.returncode,
                        "tail": open(self.etcd.log, errors="replace")
                        .read()[-3000:]})
            self.etcd.want_up = False
        self.crashes += new
        if restart:
            for c in new:
                tmp = self.tmpfs_node()
                if self.disk_full and tmp and c["name"] == tmp.name:
                    continue    # restarted once the space is back
                try:
                    if c["name"] == "etcd":
                        self.etcd.want_up = True
                        self.etcd.start()
                    else:
                        self.proc_by_name(c["name"]).start()
                except Exception as e:  # noqa: BLE001 - report, go on
                    _log("could not restart %s: %s" % (c["name"], e))
        return new

    def proc_by_name(self, name):
        for p in self.all_procs():
            if p.name == name:
                return p
        raise KeyError(name)

    def stop(self):
        """Graceful stop of everything; returns {name: exit status or None
        if it had to be killed}."""
        status = {}
        if self.net:
            self.net.heal()
        self.free_disk()
        for p in self.all_procs():
            p.resume()
        for r in self.routers:
            status[r.name] = r.term()
        status[self.ctl.name] = self.ctl.term()
        for nd in self.nodes:
            status[nd.name] = nd.term()
        self.etcd.want_up = False
        self.etcd.stop()
        return status

    def close(self):
        """Kill whatever is left (by PID), delete our nftables table,
        unmount our tmpfs, remove the directory (unless kept)."""
        if self.closed:
            return
        self.closed = True
        for p in self.all_procs():
            if p.alive():
                p.resume()
                p.kill()
        if self.etcd.proc is not None:
            self.etcd.want_up = False
            self.etcd.stop()
        self.procs.stop_all()
        if self.net:
            self.net.close()
        for m in self.mounts:
            if self.keep:  # the stores' own logs go with the tmpfs
                subprocess.run(["cp", "-a", m, m + ".kept"],
                               capture_output=True)
            subprocess.run(["umount", m], capture_output=True)
        self.mounts = []
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- state --
    def leader(self, rng):
        """The live, unpaused node that says it leads range `rng` in the
        highest term, or None."""
        best = None
        for nd in self.nodes:
            if not nd.alive() or nd.paused:
                continue
            try:
                m = nd.metrics(rng)
            except (OSError, RpcError, ValueError):
                continue
            if m.get("role") == "leader" and (best is None or
                                              m["term"] > best[1]):
                best = (nd, m["term"])
        return best[0] if best else None

    def transfer_leader(self, rng, to, deadline_s=8.0):
        """Best effort: move the leadership of `rng` to node `to` (waiting
        for an election in progress to end first). Whether `to` leads."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            ld = self.leader(rng)
            if ld is to:
                return True
            if ld is not None:
                try:
                    with Client(ld.addr, timeout=2) as c:
                        c.transfer_leader(rng, to.id)
                except (OSError, RpcError, ValueError):
                    pass
            end = min(deadline, time.monotonic() + 1.5)
            while time.monotonic() < end:
                if self.leader(rng) is to:
                    return True
                time.sleep(0.05)
        return False

    # -- disk --
    def tmpfs_node(self):
        return next((n for n in self.nodes if n.tmpfs), None)

    def fill_disk(self):
        """Fill the tmpfs node's data directory; returns bytes written."""
        nd = self.tmpfs_node()
        path = os.path.join(nd.dir, "filler")
        n = 0
        chunk = b"\0" * (1 << 20)
        with open(path, "ab", buffering=0) as f:
            while True:
                try:
                    n += f.write(chunk)
                except OSError:
                    break
            while True:     # the last partial megabyte
                try:
                    if f.write(b"\0" * 4096) == 0:
                        break
                    n += 4096
                except OSError:
                    break
        return n

    def free_disk(self):
        nd = self.tmpfs_node()
        if nd is not None:
            try:
                os.unlink(os.path.join(nd.dir, "filler"))
            except FileNotFoundError:
                pass

    # -- logs --
    def sanitizer_reports(self):
        """[(log name, line)] of every sanitizer report in our logs."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".log") or name == "etcd.log":
                continue
            with open(os.path.join(self.dir, name), errors="replace") as f:
                for line in f:
                    if any(m in line for m in SANITIZER_MARKS):
                        out.append((name, line.strip()))
        return out


def _resp_ping(port):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
