#!/usr/bin/env python3
# mem_kvd.py — the RSS figures of docs/HTTP.md "Limits: memory": kvd under the
# worst requests at the defaults, and across 4,000 bucket create/delete cycles.
#   usage: tests/system/mem_kvd.py buckets|worst|json [KVD_BINARY]   (a release build)
#          tests/system/mem_kvd.py restart KVD_BINARY CYCLES
# buckets: RSS (anonymous and file-backed, from /proc/PID/status) and the
# engine's ringcask_keyspace_bytes, keyspace handles, catalogue names and
# per-bucket counter sets every 1,000 create/PUT/delete cycles (4,000, the
# figure of the docs, then on to 8,000 to show it stays flat), and after a
# restart; restart: RSS of a fresh kvd, then final and peak (VmHWM) RSS
# of restarts before and after CYCLES cycles; worst: peak RSS under the largest answers; json: peak RSS
# of one batch of 5 million tiny ops (57 MiB body, the parsed-JSON bound).
import http.client, json, os, subprocess, sys, time, threading, shutil
KVD = sys.argv[2] if len(sys.argv) > 2 else "build-release/server/kvd"
def rss(pid, field="VmRSS"):
    if field == "VmRSS":
        return "%s (anon %s, file %s)" % (rss(pid, "VmRSS2"), rss(pid, "RssAnon"), rss(pid, "RssFile"))
    if field == "VmRSS2": field = "VmRSS"
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(field + ":"):
            return round(int(l.split()[1]) / 1024, 1)  # MiB
def start(d, extra=()):
    p = subprocess.Popen([KVD, "--dir", d, "--listen", "127.0.0.1:0", "--log-level", "warn", "--sync", "none", *extra],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    port = int(line.split("http://127.0.0.1:")[1].split(",")[0])
    return p, port
def req(c, m, path, body=None, hdr=None):
    c.request(m, path, body=body, headers=hdr or {})
    r = c.getresponse(); b = r.read(); return r.status, b
mode = sys.argv[1]
d = "/tmp/mem_kvd-data-" + mode
shutil.rmtree(d, ignore_errors=True)
if mode == "buckets":
    p, port = start(d, ["--allow-anonymous-buckets", "--bucket-create-rate", "0"])
    c = http.client.HTTPConnection("127.0.0.1", port)
    st, b = req(c, "POST", "/", json.dumps({"name": "warm"}))
    time.sleep(0.5)
    r0 = rss(p.pid, "VmRSS")
    def ks_bytes():
        st, m = req(c, "GET", "/metrics")
        got = {}
        for l in m.decode().splitlines():
            for g in ("ringcask_keyspace_bytes", "ringcask_keyspace_handles",
                      "ringcask_catalog_entries", "kvd_buckets_counted"):
                if l.startswith(g + " "):
                    got[g.split("_", 1)[1]] = int(float(l.split()[1]))
        return got
    print(f"cycles 0: RSS {r0} MiB, {ks_bytes()}")
    for i in range(8000):
        st, b = req(c, "POST", "/", json.dumps({"name": f"b{i}"})); assert st == 201, (st, b)
        key = json.loads(b)["admin_key"]; h = {"Authorization": "Bearer " + key}
        st, _ = req(c, "PUT", f"/b{i}/k", b"v", h); assert st == 201
        st, _ = req(c, "DELETE", f"/b{i}", None, h); assert st == 204
        if i == 0:
            r1 = rss(p.pid)
        if (i + 1) % 1000 == 0:
            print(f"cycles {i + 1}: RSS {rss(p.pid)} MiB, {ks_bytes()}")
        if i + 1 == 4000:
            time.sleep(1)
            r4 = rss(p.pid)
    time.sleep(1)
    r2 = rss(p.pid)
    st, m = req(c, "GET", "/metrics")
    ks = [l for l in m.decode().splitlines() if l.startswith("ringcask_keyspace_bytes") or l.startswith("ringcask_dropped")]
    p.terminate(); p.wait()
    p, port = start(d, ["--allow-anonymous-buckets"])
    time.sleep(0.5)
    r3 = rss(p.pid)
    hwm3 = rss(p.pid, "VmHWM")
    c = http.client.HTTPConnection("127.0.0.1", port)
    st, m = req(c, "GET", "/metrics")
    ks2 = [l for l in m.decode().splitlines() if l.startswith("ringcask_keyspace_bytes")]
    p.terminate(); p.wait()
    print(f"RSS MiB: start {r0}, after 1 cycle {r1}, after 4000 cycles {r4}, after 8000 cycles {r2}, after restart {r3} (peak during its open: VmHWM {hwm3})")
    print(ks, ks2)
elif mode == "restart":
    cycles = int(sys.argv[3])
    def restart(label):
        p, port = start(d, ["--allow-anonymous-buckets"])
        time.sleep(0.5)
        print(f"{label}: RSS {rss(p.pid, 'VmRSS2')} MiB, peak during the open (VmHWM) {rss(p.pid, 'VmHWM')} MiB")
        p.terminate(); p.wait()
    p, port = start(d, ["--allow-anonymous-buckets", "--bucket-create-rate", "0"])
    c = http.client.HTTPConnection("127.0.0.1", port)
    req(c, "POST", "/", json.dumps({"name": "warm"}))
    p.terminate(); p.wait()
    restart("restart with no dropped bucket")
    p, port = start(d, ["--allow-anonymous-buckets", "--bucket-create-rate", "0"])
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(cycles):
        st, b = req(c, "POST", "/", json.dumps({"name": f"b{i}"})); assert st == 201, (st, b)
        h = {"Authorization": "Bearer " + json.loads(b)["admin_key"]}
        st, _ = req(c, "PUT", f"/b{i}/k", b"v", h); assert st == 201
        st, _ = req(c, "DELETE", f"/b{i}", None, h); assert st == 204
    p.terminate(); p.wait()
    restart(f"restart after {cycles} cycles")
elif mode == "json":
    p, port = start(d, ["--allow-anonymous-buckets"])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    st, b = req(c, "POST", "/", json.dumps({"name": "t", "public": ["read", "write"]}))
    body = '{"ops":[' + ",".join(['{"get":"k"}'] * 5000000) + ']}'
    r0 = rss(p.pid)
    st, b = req(c, "POST", "/t/", body, {"Content-Type": "application/json"})
    print(f"batch of 5M tiny ops ({len(body) >> 20} MiB): {st} {b[:60]}, VmHWM {rss(p.pid, 'VmHWM')} MiB, start RSS {r0} MiB")
    p.terminate(); p.wait()
else:
    p, port = start(d, ["--allow-anonymous-buckets"])
    c = http.client.HTTPConnection("127.0.0.1", port)
    st, b = req(c, "POST", "/", json.dumps({"name": "t", "public": ["read", "write", "enumerate"]}))
    big = b"x" * (4 << 20)
    st, _ = req(c, "PUT", "/t/big", big); assert st == 201, st
    for i in range(4):
        st, _ = req(c, "PUT", f"/t/v{i}", b"y" * (16 << 20) if False else big)
    time.sleep(0.3)
    r0 = rss(p.pid)
    results = {}
    def hammer(tag, n, body):
        cc = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(n):
            if body is None:
                st, _ = req(cc, "GET", "/t/?values=true")
            else:
                st, _ = req(cc, "POST", "/t/", body, {"Content-Type": "application/json"})
            results[st] = results.get(st, 0) + 1
    worst = json.dumps({"ops": [{"get": "big"}] * 200})
    fits = json.dumps({"ops": [{"get": "big"}] * 15})
    for name, body in (("200 gets of 4 MiB", worst), ("15 gets of 4 MiB (fits)", fits), ("listing values", None)):
        results.clear()
        ts = [threading.Thread(target=hammer, args=(name, 10, body)) for _ in range(4)]
        [t.start() for t in ts]; [t.join() for t in ts]
        print(f"{name}: 4 clients x 10: statuses {results}, VmHWM {rss(p.pid, 'VmHWM')} MiB, RSS now {rss(p.pid)} MiB")
    print(f"start RSS {r0} MiB")
    p.terminate(); p.wait()
