"""Memory and hostile-client figures of kvstore beside redis-server
(BENCHMARKS.md, "kvstore: hostile clients and memory"). Run through
benches/kvstore_memory.sh, which starts both servers:

    python3 benches/kvstore_memory.py REDIS_PORT REDIS_PID KVSTORE_PORT KVSTORE_PID

Each figure is measured on one server, then the other, from the outside:
resident memory (VmRSS) and CPU time (utime + stime) of the server
process, from /proc. Sizes by environment: KEYS (default 1,000,000),
CONNECTIONS (5,000).
"""

import os
import random
import socket
import sys
import time

KEYS = int(os.environ.get("KEYS", 1_000_000))
CONNECTIONS = int(os.environ.get("CONNECTIONS", 5_000))


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def replies(s, count, buf=b""):
    """Reads `count` replies (simple, integer, error or bulk)."""
    done = 0
    while True:
        at = 0
        while done < count:
            nl = buf.find(b"\r\n", at)
            if nl < 0:
                break
            if buf[at:at + 1] == b"$":
                n = int(buf[at + 1:nl])
                end = nl + 2 + (n + 2 if n >= 0 else 0)
                if len(buf) < end:
                    break
                at = end
            else:
                at = nl + 2
            done += 1
        buf = buf[at:]
        if done >= count:
            return buf
        chunk = s.recv(1 << 20)
        if not chunk:
            raise RuntimeError("closed")
        buf += chunk


def pipeline(port, requests, batch=1000):
    s = connect(port)
    for i in range(0, len(requests), batch):
        part = requests[i:i + batch]
        s.sendall(b"".join(part))
        replies(s, len(part))
    s.close()


def settle():
    time.sleep(1.0)


def per_key(port, pid):
    pipeline(port, [encode("FLUSHDB")])
    settle()
    before = rss(pid)
    pipeline(port, [encode("SET", "key:%010d" % i, "v%08d" % i) for i in range(KEYS)])
    settle()
    loaded = rss(pid)
    rng = random.Random(7)
    pipeline(port, [encode("SET", "key:%010d" % rng.randrange(KEYS), "w%08d" % i)
                    for i in range(KEYS)])
    settle()
    overwritten = rss(pid)
    pipeline(port, [encode("FLUSHDB")])
    return (loaded - before) / KEYS, (overwritten - before) / KEYS


def idle_connections(port, pid):
    settle()
    before = rss(pid)
    socks = []
    for _ in range(CONNECTIONS):
        s = connect(port)
        s.sendall(encode("PING"))
        replies(s, 1)
        socks.append(s)
    settle()
    after = rss(pid)
    for s in socks:
        s.close()
    return (after - before) / CONNECTIONS


def pinned_by_small_keys(port, pid):
    """2,000 x (SET big <256 KiB>, SET k<i> x, DEL big) in one pipeline each."""
    pipeline(port, [encode("FLUSHDB")])
    settle()
    before = rss(pid)
    big = b"b" * (256 * 1024)
    s = connect(port)
    for i in range(2000):
        s.sendall(encode("SET", "big", big) + encode("SET", "k%d" % i, "x") + encode("DEL", "big"))
        replies(s, 3)
    s.close()
    settle()
    after = rss(pid)
    pipeline(port, [encode("FLUSHDB")])
    return after - before


def trickled(port, pid):
    """A 6.7 MB SET sent in 1,400-byte pieces: server CPU seconds."""
    value = b"t" * (6_700_000)
    wire = encode("SET", "trickled", value)
    s = connect(port)
    start = cpu(pid)
    for i in range(0, len(wire), 1400):
        s.sendall(wire[i:i + 1400])
    replies(s, 1)
    used = cpu(pid) - start
    s.sendall(encode("DEL", "trickled"))
    replies(s, 1)
    s.close()
    return used


def slow_reader(port, pid):
    """2,000 GETs of a 1 MiB value, replies not read: the server's growth."""
    s = connect(port)
    s.sendall(encode("SET", "mb", b"m" * (1 << 20)))
    replies(s, 1)
    settle()
    before = rss(pid)
    slow = connect(port)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    slow.sendall(b"".join(encode("GET", "mb") for _ in range(2000)))
    peak = 0
    for _ in range(30):
        time.sleep(0.1)
        peak = max(peak, rss(pid) - before)
    slow.close()
    s.sendall(encode("DEL", "mb"))
    replies(s, 1)
    s.close()
    return peak


def main():
    """Figures `keys` (memory per key), `rest` (the others) or `all`."""
    redis_port, redis_pid, kv_port, kv_pid = map(int, sys.argv[1:5])
    part = sys.argv[5] if len(sys.argv) > 5 else "all"
    servers = [("redis-server", redis_port, redis_pid), ("kvstore", kv_port, kv_pid)]
    rows = []
    results = {}
    for name, port, pid in servers:
        figures = {}
        if part in ("keys", "all"):
            key, overwritten = per_key(port, pid)
            figures["bytes per key (%d keys, 14 B key, 9 B value)" % KEYS] = key
            figures["bytes per key after %d random overwrites" % KEYS] = overwritten
        if part in ("rest", "all"):
            # Idle connections first, in a process that has freed nothing:
            # once keys were freed, new connections reuse resident pages and
            # read as free.
            figures["bytes per idle connection (%d connections)" % CONNECTIONS] = idle_connections(port, pid)
            figures["growth after 2,000 x (256 KiB SET, 1 B key SET, DEL), MiB"] = pinned_by_small_keys(port, pid) / 2**20
            figures["CPU s for a 6.7 MB SET in 1,400 B pieces"] = trickled(port, pid)
            figures["peak growth, slow reader of 2,000 x 1 MiB GET, MiB"] = slow_reader(port, pid) / 2**20
        results[name] = figures
        rows = list(figures.keys())
    print("| figure | redis-server | kvstore | kvstore / redis |")
    print("|---|---:|---:|---:|")
    for row in rows:
        r, k = results["redis-server"][row], results["kvstore"][row]
        ratio = "%.2f" % (k / r) if r > 0 else "-"
        print("| %s | %.2f | %.2f | %s |" % (row, r, k, ratio))


if __name__ == "__main__":
    main()
