"""Seed the CLM app, run nightly_rfm, and time how long the outbox takes to deliver the lifecycle events it
queued. Usage: python3 crates/cli/benches/outbox_drain.py TRELLIS_BINARY CUSTOMERS (from the repository root).
OUTBOX_DRAIN_SERVER_LOG=FILE writes the server's log (RUST_LOG applies) to FILE.
"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request, sqlite3
binary, customers = sys.argv[1], int(sys.argv[2])
work = tempfile.mkdtemp(prefix="outbox-drain-")
env = dict(os.environ, TRELLIS_DATA_DIR=work, TRELLIS_ADMIN_PASSWORD="bench-password-1")
subprocess.run([binary, "template", "install", "templates-gallery/clm"], env=env, check=True, stdout=subprocess.DEVNULL)
subprocess.run([binary, "seed", "--app", "clm", "--customers", str(customers)], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
s = socket.socket(); s.bind(("127.0.0.1", 0)); addr = f"127.0.0.1:{s.getsockname()[1]}"; s.close()
log = os.environ.get("OUTBOX_DRAIN_SERVER_LOG")
server = subprocess.Popen([binary, "serve", "--addr", addr], env=env, stdout=subprocess.PIPE, stderr=open(log, "w") if log else subprocess.DEVNULL, text=True)
for line in server.stdout:
    if line.startswith("listening on"): break
def call(method, path, body=None, token=None):
    r = urllib.request.Request(f"http://{addr}{path}", data=None if body is None else json.dumps(body).encode(), method=method)
    r.add_header("content-type", "application/json")
    if token: r.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(r, timeout=3600) as resp: return json.loads(resp.read() or b"null")
try:
    token = call("POST", "/api/auth/login", {"username": "admin", "password": "bench-password-1"})["token"]
    db = sqlite3.connect(f"file:{work}/trellis.db?mode=ro", uri=True, timeout=60)
    pending = lambda: db.execute("select count(*) from outbox where status='pending'").fetchone()[0]
    while pending() > 0: time.sleep(0.5)
    t0 = time.perf_counter(); call("POST", "/api/apps/clm/rules/nightly_rfm/run", {}, token); t1 = time.perf_counter()
    queued = db.execute("select count(*) from outbox").fetchone()[0]
    while pending() > 0: time.sleep(0.2)
    t2 = time.perf_counter()
    done = db.execute("select count(*) from outbox where status='done'").fetchone()[0]
    print(f"{binary}: nightly_rfm {t1-t0:.2f} s; outbox drained {t2-t1:.2f} s after it; entries {queued} ({done} done)")
finally:
    server.terminate(); server.wait()
