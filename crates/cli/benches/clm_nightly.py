"""The CLM nightly batch, timed step by step on a seeded app, beside DuckDB computing the same RFM
scores and 12-month spend from the same orders (the baseline, in the same run).

Usage: python3 crates/cli/benches/clm_nightly.py TRELLIS_BINARY CUSTOMERS
Prints one line per step (median of one run each: these are minutes-long batch steps) and a summary.

Optional environment:
- CLM_NIGHTLY_SEEDED=DIR keeps a copy of the freshly seeded data directory in DIR and, when DIR
  already holds one for the same number of customers, starts from a copy of it instead of seeding
  (each run still sees the first night after the seed);
- CLM_NIGHTLY_PURCHASE_RATE=R seeds with `trellis seed --purchase-rate R` (1.4: ~10 M orders for
  1 M customers, the goal's size; default 1.0, ~7 M); the kept copy is per customers and rate;
- CLM_NIGHTLY_DRAIN=0 skips timing the outbox drain after the rules (the lifecycle events, created
  records and related updates the night queued; minutes on a first night at 1 M customers);
- CLM_NIGHTLY_SERVER_LOG=FILE writes the server's log (RUST_LOG applies) to FILE;
- CLM_NIGHTLY_STEPS=rule,rule runs only those rules (in that order) and no baseline: for
  profiling one step; `a+b+c` runs rules a, b and c together (`POST …/rules/run`), as the
  scheduler runs the template's nightly write-backs, all due at 03:00; `x | y,z` runs lanes side
  by side (x beside y-then-z), as the scheduler runs the due rules of different entities.

By default the rules run one after another in the template's schedule order (points at midnight,
the leads' decay at 02:00, the customers' write-backs together at 03:00); the total is their sum,
and a subtotal leaves out the leads' decay (lead scoring, not one of the goal's named steps: RFM,
health, churn tiers, BG/NBD refit, points expiry).

The total's line also shows the CPU time the server used meanwhile (user + system, all threads;
twice the wall time is both cores busy), read from /proc.
"""
import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request

binary, customers = sys.argv[1], int(sys.argv[2])
work = tempfile.mkdtemp(prefix="clm-nightly-")
env = dict(os.environ, TRELLIS_DATA_DIR=work, TRELLIS_ADMIN_PASSWORD="bench-password-1")
env.pop("TRELLIS_DB", None)

def run(*args):
    started = time.perf_counter()
    subprocess.run([binary, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started

def copy_data_dir(source, target, cached):
    """Copy the data directory `source` to `target` (which must not exist), leaving only the copy
    named by `cached` ("source" or "target") in the OS page cache. A plain copy of the 15 GB
    database at 1 M customers filled the 24 GB machine's cache with both copies, evicting half of
    the one the server then used: its nightly write-back then read customers from the disk."""
    os.makedirs(target)
    chunk = 64 << 20
    for name in os.listdir(source):
        with open(os.path.join(source, name), "rb") as src, open(os.path.join(target, name), "wb") as dst:
            offset = 0
            while True:
                data = src.read(chunk)
                if not data:
                    break
                dst.write(data)
                dropped = src if cached == "target" else dst
                if dropped is dst:
                    dst.flush()
                    os.fdatasync(dst.fileno())
                os.posix_fadvise(dropped.fileno(), offset, len(data), os.POSIX_FADV_DONTNEED)
                offset += len(data)


timings = []
seeded = os.environ.get("CLM_NIGHTLY_SEEDED")
rate = os.environ.get("CLM_NIGHTLY_PURCHASE_RATE", "1.0")
marker_name = f"seeded-{customers}" if rate == "1.0" else f"seeded-{customers}-rate-{rate}"
seeded_marker = seeded and os.path.join(seeded, marker_name)
if seeded_marker and os.path.exists(seeded_marker):
    shutil.rmtree(work)
    started = time.perf_counter()
    copy_data_dir(seeded, work, cached="target")
    os.remove(os.path.join(work, marker_name))
    timings.append((f"copy of the seeded {customers} customers (no seed)", time.perf_counter() - started))
else:
    timings.append(("install CLM template", run("template", "install", "templates-gallery/clm")))
    timings.append((f"seed {customers} customers", run("seed", "--app", "clm", "--customers", str(customers), "--purchase-rate", rate)))
    if seeded:
        shutil.rmtree(seeded, ignore_errors=True)
        copy_data_dir(work, seeded, cached="source")
        open(seeded_marker, "w").close()

port = socket.socket(); port.bind(("127.0.0.1", 0)); addr = f"127.0.0.1:{port.getsockname()[1]}"; port.close()
server_log = os.environ.get("CLM_NIGHTLY_SERVER_LOG")
server_stderr = open(server_log, "w") if server_log else subprocess.DEVNULL
server = subprocess.Popen([binary, "serve", "--addr", addr], env=env, stdout=subprocess.PIPE, stderr=server_stderr, text=True)
for line in server.stdout:
    if line.startswith("listening on"):
        break

def server_cpu_seconds():
    """User + system CPU time of the server process so far (all its threads), from /proc."""
    with open(f"/proc/{server.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def call(method, path, body=None, token=None, raw=False):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=3600) as response:
        payload = response.read()
        return payload if raw else json.loads(payload or b"null")

try:
    token = call("POST", "/api/auth/login", {"username": "admin", "password": "bench-password-1"})["token"]
    counts = {e: call("GET", f"/api/apps/clm/entities/{e}/records?count=true&limit=1", token=token)["total"] for e in ["customer", "order"]}
    # The three write-backs are due together (03:00) and the scheduler runs them as one.
    # In the template's schedule order, one after another: the points rules fall due at midnight
    # (date_reached), the leads' decay at 02:00, the customers' three write-backs at 03:00 (run
    # together, as the scheduler runs rules due in one pass).
    lanes = "points_count_when_available,points_expire,lead_engagement_decay,nightly_rfm+nightly_tier_window+nightly_customer_value"
    chosen = os.environ.get("CLM_NIGHTLY_STEPS")
    import threading
    lane_timings, lane_errors = {}, []
    def run_lane(index, steps):
        try:
            run_steps(index, steps)
        except Exception as error:
            lane_errors.append(error)
    def run_steps(index, steps):
        done = lane_timings.setdefault(index, [])
        for rule in steps:
            started = time.perf_counter()
            if "+" in rule:
                outcome = call("POST", "/api/apps/clm/rules/run", {"rules": rule.split("+")}, token)
            else:
                outcome = call("POST", f"/api/apps/clm/rules/{rule}/run", {}, token)
            elapsed = time.perf_counter() - started
            done.append((f"rule {rule} ({outcome.get('changed', '?')} changed)", elapsed))
            for step in outcome.get("reports", []):
                done.append((f"  of which report {step['report']} ({step['rows']} rows)", step["elapsed_ms"] / 1000))
            if "write_back_ms" in outcome:
                done.append(("  of which the write-back", outcome["write_back_ms"] / 1000))
    cpu_before = server_cpu_seconds()
    started = time.perf_counter()
    threads = [threading.Thread(target=run_lane, args=(index, [s.strip() for s in lane.split(",")]))
               for index, lane in enumerate((chosen or lanes).split("|"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = time.perf_counter() - started
    cpu = server_cpu_seconds() - cpu_before
    for index in sorted(lane_timings):
        timings.extend(lane_timings[index])
    if lane_errors:
        raise lane_errors[0]
    timings.append((f"the rules (server CPU {cpu:.1f} s)", total))
    decay = sum(seconds for name, seconds in timings if name.startswith("rule lead_engagement_decay"))
    if decay and len(threads) == 1:
        timings.append(("  of which the goal's named steps (all but the leads' decay)", total - decay))
    # What the steps set in motion (lifecycle events, points balances, created records) is
    # delivered by the outbox after them: time until nothing is pending (read-only look at the
    # SQLite file).
    import sqlite3
    db = sqlite3.connect(f"file:{work}/trellis.db?mode=ro", uri=True, timeout=60)
    if os.environ.get("CLM_NIGHTLY_DRAIN") == "0":
        db.execute("select 1 from outbox where 0")  # not timed: CLM_NIGHTLY_DRAIN=0
    else:
        pending_at_end = db.execute("select count(*) from outbox where status = 'pending'").fetchone()[0]
        started = time.perf_counter()
        drain_cpu_before = server_cpu_seconds()
        while db.execute("select count(*) from outbox where status = 'pending'").fetchone()[0] > 0 and time.perf_counter() - started < 1800:
            time.sleep(0.5)
        drained = time.perf_counter() - started
        drain_cpu = server_cpu_seconds() - drain_cpu_before
        statuses = dict(db.execute("select status, count(*) from outbox group by status").fetchall())
        timings.append((f"after the rules: outbox drained ({pending_at_end} entries pending when they ended; now {statuses}; server CPU {drain_cpu:.1f} s)", drained))
        for kind, action, count in db.execute("select kind, substr(payload, 1, instr(payload, ':{') - 1), count(*) from outbox group by 1, 2 order by 3 desc").fetchall():
            timings.append((f"  outbox entries {kind} {action[:40]}: {count}", 0.0))
    db.close()
    # What the night left (for comparing runs: the same data must end in the same state).
    for entity in ["activity", "coupon", "points_entry", "task"]:
        try:
            left = call("GET", f"/api/apps/clm/entities/{entity}/records?count=true&limit=1", token=token)["total"]
            timings.append((f"  records of {entity} afterwards: {left}", 0.0))
        except urllib.error.HTTPError:
            pass
    if chosen:
        for name, seconds in timings:
            print(f"{name:75s} {seconds:9.2f} s")
        print(f"{'rules end to end':75s} {total:9.2f} s")
        sys.exit(0)
    # Baseline: DuckDB, the same RFM inputs and 12-month spend from the same orders (CSV export).
    csv = os.path.join(work, "orders.csv")
    started = time.perf_counter()
    with open(csv, "wb") as out:
        out.write(call("GET", "/api/apps/clm/entities/order/export?format=csv", token=token, raw=True))
    export = time.perf_counter() - started
    import duckdb
    started = time.perf_counter()
    con = duckdb.connect()
    columns = [c[0] for c in con.execute(f"DESCRIBE SELECT * FROM read_csv_auto('{csv}')").fetchall()]
    pick = lambda *names: next(c for c in columns if c.lower() in names)
    cust, day, amount, status = pick("customer", "客户"), pick("ordered on", "ordered_at", "下单日期"), pick("total", "金额"), pick("status", "状态")
    con.execute(f"""
        CREATE TABLE o AS SELECT "{cust}" AS customer, CAST("{day}" AS DATE) AS day, CAST("{amount}" AS DOUBLE) AS total
        FROM read_csv_auto('{csv}') WHERE lower("{status}") IN ('paid', '已支付')""")
    rfm = con.execute("""
        WITH per AS (SELECT customer, current_date - max(day) AS recency, count(*) AS frequency, sum(total) AS monetary FROM o GROUP BY customer)
        SELECT customer, 6 - ntile(5) OVER (ORDER BY recency) AS r, ntile(5) OVER (ORDER BY frequency, customer) AS f,
               ntile(5) OVER (ORDER BY monetary) AS m FROM per""").fetchall()
    spend = con.execute("SELECT customer, sum(total) FROM o WHERE day >= current_date - 365 GROUP BY customer").fetchall()
    duck = time.perf_counter() - started
    print(f"machine: {os.cpu_count()} cores; customers {counts['customer']}, orders {counts['order']}")
    for name, seconds in timings:
        print(f"{name:75s} {seconds:9.2f} s")
    print(f"{'nightly rules end to end':75s} {total:9.2f} s")
    print(f"{'baseline: CSV export of orders':75s} {export:9.2f} s")
    print(f"{'baseline: DuckDB RFM + 12-month spend ({} + {} rows)'.format(len(rfm), len(spend)):75s} {duck:9.2f} s")
finally:
    server.terminate()
    server.wait()
    # The working copy is as large as the seeded database (~14 GB at 1 M customers).
    shutil.rmtree(work, ignore_errors=True)
