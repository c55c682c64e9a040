#!/usr/bin/env python3
"""The inbox measured (run by bench/inbox.sh, which builds the binary and
starts a throwaway PostgreSQL cluster).

  small  --db DB --bin BIN --work DIR [--skus 100000] [--orders 30] [--files 10] [--settle 0.2]
         A --watch worker over a catalog of SKUS skus: one file of ORDERS
         orders first (the catalog read and kept), then FILES files one after
         another, each written under .part and renamed into the inbox. For each:
         from its arrival (its modification time) to its move into done, from
         the JSON log's inbox_moved event; split into the wait before the
         worker took it (--settle and the look) and the work after.

  workers --db URL --bin BIN --work DIR [--workers 4] [--files 40] [--orders 2000] [--lease 5]
         WORKERS --watch workers on one inbox while FILES files arrive (one
         every 100 ms, under .part, renamed); one worker is SIGKILLed right
         after it takes its third file, so another takes that file over once
         the lease has ended. Files, moves by worker, takeovers, and each
         file's time from arrival to its move.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

HEADER = "order_id,placed_at,customer_email,sku,quantity,unit_price,currency,payment_method,payment_ref,payment_amount"


def catalog(path, skus, stock):
    with open(path, "w") as f:
        f.write("sku,name,unit_price,currency,on_hand\n")
        for i in range(skus):
            f.write(f"SKU-{i},Product {i},{10 + i % 90}.00,EUR,{stock}\n")


def orders(prefix, n, skus):
    rows = [HEADER]
    for i in range(n):
        sku = (i * 7919 + len(prefix) * 104729) % skus
        price = 10 + sku % 90
        rows.append(
            f"{prefix}-{i},2026-11-25T22:14:03Z,buyer@example.com,SKU-{sku},1,{price}.00,EUR,card,ref-{i},{price}.00"
        )
    return "\n".join(rows) + "\n"


def arrive(inbox, name, text):
    part = inbox / f"{name}.part"
    part.write_text(text)
    os.rename(part, inbox / name)
    return os.stat(inbox / name).st_mtime


def events(log):
    out = []
    try:
        with open(log) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return out


def ts(event):
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def wait_for(what, check, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.002)
    sys.exit(f"waited {limit} s for {what}")


def worker(args, name, extra):
    log = open(args.work / f"{name}.log", "w")
    cmd = [args.bin, "--db", args.db, "-q", "--no-progress", "--log-format", "json", "inbox",
           str(args.work / "in"), "--watch", "--out", str(args.work / "reports")] + extra
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, cwd=args.work), args.work / f"{name}.log"


def ms(s):
    return f"{s * 1000:.0f} ms"


def small(args):
    inbox = args.work / "in"
    inbox.mkdir(parents=True)
    catalog(args.work / "catalog.csv", args.skus, 1_000_000)
    subprocess.run([args.bin, "--db", args.db, "-q", "inventory", "load", str(args.work / "catalog.csv")],
                   check=True, cwd=args.work)
    proc, log = worker(args, "w", ["--settle", str(args.settle)])
    rows = []
    try:
        for k in range(args.files + 1):
            name = f"f{k:03d}.csv"
            arrived = arrive(inbox, name, orders(f"S{k}", args.orders, args.skus))
            moved = wait_for(f"{name} moved", lambda: [e for e in events(log)
                                                       if e.get("event") == "inbox_moved" and e.get("file") == name])
            took = [e for e in events(log) if e.get("event") == "inbox_take" and e.get("file") == name]
            rows.append((name, ts(took[0]) - arrived, ts(moved[0]) - arrived))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    first, rest = rows[0], rows[1:]
    total = [r[2] for r in rest]
    work = [r[2] - r[1] for r in rest]
    print(f"catalog {args.skus} skus, {args.orders}-order files, --settle {args.settle}")
    print(f"  first file (catalog read):  arrival to done {ms(first[2])}, of which after the take {ms(first[2] - first[1])}")
    print(f"  next {len(rest)} files (catalog kept): arrival to done median {ms(statistics.median(total))}, "
          f"max {ms(max(total))}; after the take median {ms(statistics.median(work))}, max {ms(max(work))}")
    print(f"  arrival to done minus --settle: median {ms(statistics.median(total) - args.settle)}, "
          f"max {ms(max(total) - args.settle)}")


def workers(args):
    inbox = args.work / "in"
    inbox.mkdir(parents=True)
    catalog(args.work / "catalog.csv", 1000, 10_000_000)
    subprocess.run([args.bin, "--db", args.db, "-q", "inventory", "load", str(args.work / "catalog.csv")],
                   check=True, cwd=args.work)
    pool = [worker(args, f"w{i}", ["--settle", "1", "--lease", str(args.lease)]) for i in range(args.workers)]
    victim, victim_log = pool[-1]

    def kill_on_third_take():
        # Watched closely: a file of 2,000 orders takes tens of milliseconds.
        wait_for("the victim's third take", lambda: len([e for e in events(victim_log)
                                                         if e.get("event") == "inbox_take"]) >= 3)
        victim.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_on_third_take, daemon=True)
    killer.start()
    arrivals = {}
    start = time.monotonic()
    for k in range(args.files):
        name = f"f{k:03d}.csv"
        arrivals[name] = arrive(inbox, name, orders(f"W{k}", args.orders, 1000))
        time.sleep(0.1)
    killer.join(60)
    done = inbox / "done"
    wait_for("every file in done", lambda: done.is_dir() and len(list(done.iterdir())) == args.files)
    took_all = time.monotonic() - start
    for p, _ in pool:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = [p.wait(120) for p, _ in pool]
    moved, takeovers, duplicates, latency = {}, [], 0, []
    for i, (_, log) in enumerate(pool):
        for e in events(log):
            if e.get("event") in ("inbox_moved", "inbox_duplicate"):
                moved[f"w{i}"] = moved.get(f"w{i}", 0) + 1
                latency.append((ts(e) - arrivals[e["file"]], e["file"], f"w{i}"))
                duplicates += e.get("event") == "inbox_duplicate"
            if e.get("event") == "inbox_takeover":
                takeovers.append((f"w{i}", e["file"], e.get("from_pid")))
    runs = json.loads(subprocess.run([args.bin, "--db", args.db, "runs", "list", "--json"], check=True,
                                     capture_output=True, text=True, cwd=args.work).stdout)
    by_status = {}
    for r in runs:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    accepted = sum(r["accepted"] for r in runs if r["status"] == "completed")
    verify = subprocess.run([args.bin, "--db", args.db, "-q", "verify"], cwd=args.work).returncode
    latency.sort()
    values = [l[0] for l in latency]
    print(f"{args.workers} workers, {args.files} files of {args.orders} orders, one every 100 ms; "
          f"w{args.workers - 1} SIGKILLed right after its third take (lease {args.lease} s)")
    print(f"  all files in done after {took_all:.1f} s; exit codes {codes} (the killed one: -9)")
    print(f"  moves by worker: {dict(sorted(moved.items()))}; duplicates (done without a run): {duplicates}")
    print(f"  takeovers: {len(takeovers)} {takeovers}")
    print(f"  runs by status: {by_status}; orders accepted by completed runs: {accepted} "
          f"of {args.files * args.orders} (each once); verify exit {verify}")
    print(f"  arrival to move: min {ms(values[0])}, median {ms(statistics.median(values))}, "
          f"p90 {ms(values[int(len(values) * 0.9)])}, max {ms(values[-1])} ({latency[-1][1]}, by {latency[-1][2]})")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["small", "workers"])
    p.add_argument("--db", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--skus", type=int, default=100_000)
    p.add_argument("--orders", type=int, default=None)
    p.add_argument("--files", type=int, default=None)
    p.add_argument("--settle", type=float, default=0.2)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--lease", type=float, default=5)
    args = p.parse_args()
    if args.what == "small":
        args.orders, args.files = args.orders or 30, args.files or 10
        small(args)
    else:
        args.orders, args.files = args.orders or 2000, args.files or 40
        workers(args)


if __name__ == "__main__":
    main()
