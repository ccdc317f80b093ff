"""A real one-member etcd for cluster tests: start, SIGKILL, restart on the
same data and ports, and read keys through its v3 JSON gateway. Ended by
PID (stop)."""
import base64
import json
import os
import signal
import subprocess
import urllib.request

from nodeharness import free_port, wait_for


class Etcd:
    """A one-member etcd that can be killed and restarted on its data."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cp, self.pp = free_port(), free_port()
        self.url = "http://127.0.0.1:%d" % self.cp
        self.proc = None

    def start(self):
        peer = "http://127.0.0.1:%d" % self.pp
        with open(os.path.join(self.tmp, "etcd.log"), "ab") as log:
            self.proc = subprocess.Popen(
                ["etcd", "--name", "t", "--data-dir",
                 os.path.join(self.tmp, "etcd"),
                 "--listen-client-urls", self.url,
                 "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer,
                 "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", "t=" + peer],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.range("/probe") is not None, 30, "etcd")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.kill()

    def range(self, key, prefix=False):
        """{key: value} of `key` (or every key under it)."""
        k = key.encode()
        body = {"key": base64.b64encode(k).decode()}
        if prefix:
            end = k[:-1] + bytes([k[-1] + 1])
            body["range_end"] = base64.b64encode(end).decode()
        req = urllib.request.Request(self.url + "/v3/kv/range",
                                     json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3) as resp:
            kvs = json.loads(resp.read()).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode():
                base64.b64decode(kv.get("value", "")).decode() for kv in kvs}

    def put(self, key, value):
        """Blind write: tests only (stand-ins for what a node writes)."""
        body = {"key": base64.b64encode(key.encode()).decode(),
                "value": base64.b64encode(value.encode()).decode()}
        req = urllib.request.Request(self.url + "/v3/kv/put",
                                     json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3) as resp:
            resp.read()
