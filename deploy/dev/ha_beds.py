"""The high-availability pieces around popgate nodes, on loopback, for tests
and the soak run (tests/soak/): a Redis master with a replica watched by three
Sentinels, and HAProxy in front of several popgate nodes (PROXY v2, health
checks on /health).

Every process is started with PR_SET_PDEATHSIG (it dies with the Python
process) and stopped by PID in stop(), which is idempotent.
"""

import os
import shutil
import subprocess

import testbed

REDIS = testbed.REDIS
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def redis_cli(port, *args, timeout=10):
    """One redis-cli command on 127.0.0.1:port; its stdout, stripped ("" when
    it could not connect)."""
    try:
        return subprocess.run([REDIS_CLI, "-p", str(port), *args], capture_output=True,
                              text=True, timeout=timeout).stdout.strip()
    except subprocess.TimeoutExpired:
        return ""


class RedisSentinels:
    """A Redis master, one replica and three Sentinels (quorum 2) in dir_.

    Attributes: master_name, sentinel_ports, master_port (the first master's
    port), replica_port. master_addr() asks a Sentinel who the master is now.
    """

    BASE = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def __init__(self, dir_, master_name="pgmaster", down_after_ms=1000, failover_timeout_ms=5000):
        self.dir = dir_
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.master_port, self.replica_port, *self.sentinel_ports = testbed.free_ports(5)
        self.procs = {}      # port -> Popen, data nodes and sentinels

    def _start(self, port, args, name):
        with open(os.path.join(self.dir, f"{name}-{port}.log"), "ab") as log:
            p = subprocess.Popen([REDIS, *args], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, cwd=self.dir,
                                 preexec_fn=testbed._die_with_parent)
        self.procs[port] = p
        testbed.wait_for(lambda: redis_cli(port, "PING") == "PONG", testbed.START_TIMEOUT,
                         f"redis on {port}")
        return p

    def start_data_node(self, port, replica_of=None):
        """A Redis server on port, a replica of the port replica_of if given."""
        args = ["--port", str(port), *self.BASE]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        return self._start(port, args, "redis")

    def start(self, sentinels_ready_timeout=30):
        try:
            self.start_data_node(self.master_port)
            self.start_data_node(self.replica_port, replica_of=self.master_port)
            for port in self.sentinel_ports:
                conf = os.path.join(self.dir, f"sentinel-{port}.conf")
                with open(conf, "w") as f:
                    f.write(f"port {port}\nbind 127.0.0.1\n"
                            f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 2\n"
                            f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
                            f"sentinel failover-timeout {self.master_name} {self.failover_timeout_ms}\n"
                            f"sentinel parallel-syncs {self.master_name} 1\n")
                self._start(port, [conf, "--sentinel"], "sentinel")
            self.wait_replication(self.replica_port)
            # A failover needs every sentinel to know the replica and the others.
            testbed.wait_for(lambda: self.sentinels_ready(1), sentinels_ready_timeout,
                             "sentinels to discover the replica and each other")
        except BaseException:
            self.stop()
            raise
        return self

    def sentinels_ready(self, replicas, need=None):
        """At least `need` sentinels (default: all) know `replicas` live
        replicas and the other sentinels."""
        ready = 0
        for port in self.sentinel_ports:
            info = redis_cli(port, "SENTINEL", "MASTER", self.master_name).split("\n")
            fields = dict(zip(info[::2], info[1::2]))
            if fields.get("num-other-sentinels") != str(len(self.sentinel_ports) - 1):
                continue
            lines = redis_cli(port, "SENTINEL", "REPLICAS", self.master_name).split("\n")
            live = sum(1 for i in range(0, len(lines) - 1, 2)
                       if lines[i] == "flags" and lines[i + 1] == "slave")
            if live >= replicas:
                ready += 1
        return ready >= (len(self.sentinel_ports) if need is None else need)

    def replicas_in_sync(self):
        """Replicas connected to the current master (what WAIT counts)."""
        info = redis_cli(self.master_addr()[1], "INFO", "replication")
        for line in info.splitlines():
            if line.startswith("connected_slaves:"):
                return int(line.split(":")[1])
        return 0

    def wait_replication(self, replica_port, timeout=30):
        testbed.wait_for(lambda: "master_link_status:up" in redis_cli(replica_port, "INFO", "replication"),
                         timeout, f"replica {replica_port} in sync")

    def master_addr(self):
        """(host, port) of the master as the first sentinel that answers sees it."""
        for port in self.sentinel_ports:
            out = redis_cli(port, "SENTINEL", "get-master-addr-by-name", self.master_name).split("\n")
            if len(out) == 2:
                return out[0], int(out[1])
        raise RuntimeError("no sentinel answered")

    def sentinels_setting(self):
        """The [redis] sentinels value for popgate."""
        return ", ".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def restart_master(self, timeout=60):
        """Stop the current master (SIGTERM, as a restart does), wait for the
        sentinels to promote its replica, then start it again as the new
        master's replica and wait until the sentinels know it. Returns
        (old port, new master port)."""
        _, old = self.master_addr()
        testbed.stop_process(self.procs.pop(old))
        testbed.wait_for(lambda: self.master_addr()[1] != old, timeout, "sentinel failover")
        new = self.master_addr()[1]
        self.start_data_node(old, replica_of=new)
        self.wait_replication(old, timeout)
        # A quorum of sentinels is what the next failover needs (on a loaded
        # machine one may lag behind for a while).
        testbed.wait_for(lambda: self.sentinels_ready(1, need=2), timeout,
                         "a quorum of sentinels to see the new replica")
        return old, new

    def stop(self):
        for port in list(self.procs):
            testbed.stop_process(self.procs.pop(port))


class HAProxy:
    """HAProxy on loopback, TCP mode: one frontend per name in `frontends`,
    each balancing round-robin over the matching port of every node, with
    PROXY v2 and an HTTP health check (GET /health) on each node's metrics
    port.

    nodes: list of (name, {frontend: port}, health_port). Attributes: ports
    (frontend -> the port clients connect to), config_path."""

    def __init__(self, dir_, frontends, nodes, check_inter_ms=300, timeout_client_s=60):
        self.dir = dir_
        self.frontends = list(frontends)
        self.nodes = nodes
        self.ports = dict(zip(self.frontends, testbed.free_ports(len(self.frontends))))
        self.config_path = os.path.join(dir_, "haproxy.cfg")
        self.check_inter_ms = check_inter_ms
        self.timeout_client_s = timeout_client_s
        self.proc = None

    def config(self):
        out = ["global", "    maxconn 2000",
               "defaults", "    mode tcp", "    timeout connect 2s",
               f"    timeout client {self.timeout_client_s}s",
               f"    timeout server {self.timeout_client_s}s"]
        for fe in self.frontends:
            out += [f"frontend {fe}", f"    bind 127.0.0.1:{self.ports[fe]}",
                    f"    default_backend {fe}_nodes",
                    f"backend {fe}_nodes", "    balance roundrobin",
                    "    option httpchk GET /health", "    http-check expect status 200"]
            for name, ports, health in self.nodes:
                out.append(f"    server {name} 127.0.0.1:{ports[fe]} send-proxy-v2 check port {health} "
                           f"inter {self.check_inter_ms} fall 1 rise 1")
        return "\n".join(out) + "\n"

    def start(self):
        with open(self.config_path, "w") as f:
            f.write(self.config())
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=testbed._die_with_parent)
        try:
            testbed.wait_for_ports([("127.0.0.1", p) for p in self.ports.values()], self.proc,
                                   testbed.START_TIMEOUT, "haproxy")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        testbed.stop_process(self.proc)
        self.proc = None
