#!/usr/bin/env bash
# Benchmark of `runs prune` on SQLite: a year of nights, then all but the
# last K nights forgotten, the space given back either way SQLite can:
#   vacuum     : a database made with auto_vacuum off (every database made
#                before schema version 3): `runs prune` runs VACUUM
#   incremental: a database made with auto_vacuum=INCREMENTAL: `runs prune`
#                runs `PRAGMA incremental_vacuum` in steps
# Both databases get the same nights (N files of M orders, cut from one
# file of the order generator, a reprocess every 7th night; bench/lib.sh
# takes the generator from outside this repository), with their run times
# then spread over the last 365 days. Prints, for each: the time the nights
# took, the database and reports before and after, the
# prune's wall time and peak RSS, and how long the space took to give back.
# With --index-cost, it also times one file of 100 nights (M x 100 orders) into a fresh
# database with and without the orders_unpruned index (P pairs, alternating).
#
#   bench/prune.sh [--nights N] [--orders-per-night M] [--keep K] [--index-cost] [--pairs P] [--out FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
nights=365
per=2000
keep=90
index_cost=0
pairs=3
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nights) nights=$2; shift 2 ;;
        --orders-per-night) per=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        --index-cost) index_cost=1; shift ;;
        --pairs) pairs=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: $0 [--nights N] [--orders-per-night M] [--keep K] [--index-cost] [--pairs P] [--out FILE]" >&2; exit 2 ;;
    esac
done
bench_needs sqlite3 python3 /usr/bin/time
(cd "$root" && cargo build --profile profiling --quiet)
bin="$root/target/profiling/orderbatch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report="$work/report"
: > "$report"
say() { echo "$*" | tee -a "$report" >&2; }

echo "generating $nights nights of $per orders ..." >&2
python3 "$gen" "$work/gen" --orders $((nights * per)) --skus 20000 --bad-rate 0.02 --stock ample --format csv
python3 - "$work" "$nights" "$per" <<'EOF'
import os, sys
work, nights, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
src = open(os.path.join(work, "gen", "orders.csv"))
header = src.readline()
out, n, last = None, -1, None
for line in src:
    oid = line.split(",", 1)[0]
    if oid != last:
        last = oid
        k = int(oid[4:])
        if k // per != n:
            n = k // per
            if out:
                out.close()
            out = open(os.path.join(work, "night-%04d.csv" % n), "w")
            out.write(header)
    out.write(line)
out.close()
EOF

spread() {  # the runs' times over the last 365 days, summary.json files with them
    python3 - "$1" "$2" <<'EOF'
import datetime, json, os, sqlite3, sys
db, reports = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
ids = [r[0] for r in c.execute("SELECT id FROM runs ORDER BY id")]
now = datetime.datetime.now(datetime.timezone.utc)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)
for i, id in enumerate(ids):
    fin = now - datetime.timedelta(days=365) + datetime.timedelta(days=365) * (i + 1) / len(ids)
    started, finished = fmt(fin - datetime.timedelta(seconds=2)), fmt(fin)
    c.execute("UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?", (started, finished, id))
    p = os.path.join(reports, "run-%d" % id, "summary.json")
    if os.path.exists(p):
        s = json.load(open(p))
        s["started_at"], s["finished_at"] = started, finished
        json.dump(s, open(p, "w"))
c.commit()
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
EOF
}

size() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {printf "%.1f MB", s / 1e6}'; }

for mode in vacuum incremental; do
    db="$work/$mode.db"
    reports="$work/reports-$mode"
    if [ "$mode" = incremental ]; then
        sqlite3 "$db" 'PRAGMA page_size=16384; PRAGMA auto_vacuum=INCREMENTAL; CREATE TABLE x(a); DROP TABLE x;'
    fi
    "$bin" --db "$db" -q inventory load "$work/gen/catalog.csv"
    start=$(date +%s.%N)
    for f in "$work"/night-*.csv; do
        n=$(basename "$f" .csv); n=$((10#${n#night-}))
        "$bin" --db "$db" -q --no-progress process "$f" --out "$reports" 2>/dev/null || [ $? -eq 3 ]
        if [ $((n % 7)) -eq 6 ]; then
            "$bin" --db "$db" -q --no-progress reprocess --out "$reports" 2>/dev/null || [ $? -eq 3 ]
        fi
    done
    took=$(echo "$(date +%s.%N) - $start" | bc)
    spread "$db" "$reports"
    before=$(python3 -c "import datetime; print((datetime.date.today() - datetime.timedelta(days=$keep)).isoformat())")
    say "== $mode: $nights nights of $per orders in $(printf %.1f "$took") s; database $(size "$db" "$db-wal"), reports $(size "$reports")"
    /usr/bin/time -f "%e %M" -o "$work/t" "$bin" --db "$db" --no-progress runs prune --before "$before" --out "$reports" 2> "$work/said"
    grep -v '^[0-9.]* [0-9]*$' "$work/said" | sed 's/^/   /' | tee -a "$report" >&2
    read -r wall rss < <(tail -n 1 "$work/t")
    say "   prune: ${wall} s, peak RSS $((rss / 1024)) MB; after: database $(size "$db" "$db-wal"), reports $(size "$reports")"
    "$bin" --db "$db" verify -q
done

if [ "$index_cost" = 1 ]; then
    big=$((per * 100))
    head -n 1 "$work/night-0000.csv" > "$work/big.csv"
    for f in $(ls "$work"/night-*.csv | head -n 100); do tail -n +2 "$f" >> "$work/big.csv"; done
    for i in $(seq "$pairs"); do
        for idx in with without; do
            rm -f "$work"/idx.db*
            "$bin" --db "$work/idx.db" -q inventory load "$work/gen/catalog.csv"
            [ "$idx" = without ] && sqlite3 "$work/idx.db" 'DROP INDEX orders_unpruned'
            time_cmd "process-$idx-index" "$bin" --db "$work/idx.db" -q --no-progress process "$work/big.csv" --out "$work/r-idx"
            rm -rf "$work/r-idx"
        done
    done
    for idx in with without; do
        med=$(grep "^process-$idx-index " "$work/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        say "== $big orders in one run, $idx the orders_unpruned index: median $med s of $pairs"
    done
fi
[ -n "$out" ] && cp "$report" "$out"
exit 0
