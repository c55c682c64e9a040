#!/usr/bin/env bash
# Peak memory (GNU time's maximum resident set) and exit code of orderbatch on
# hostile inputs: each must stay under 100 MB and end in failed records or a
# clear exit 2, never a crash. Release build, SQLite, a fresh temp directory.
#
#   bench/hostile.sh            print one line per input: label, exit, seconds, peak MB
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (apt-get install time)" >&2; exit 2; }
(cd "$root" && cargo build --release --quiet)
bin="$root/target/release/orderbatch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

header="order_id,placed_at,customer_email,sku,quantity,unit_price,currency,payment_method,payment_ref,payment_amount"
{
    echo "sku,name,unit_price,currency,on_hand"
    for i in $(seq 0 49); do echo "SKU-$i,Product $i,10.00,EUR,100000000"; done
} > catalog.csv
"$bin" --db t.db inventory load catalog.csv -q

python3 - "$header" <<'EOF'
import sys, zipfile
header = sys.argv[1]
row = lambda i: f"O-{i},2026-11-25T22:14:03Z,a{i}@example.com,SKU-{i % 50},1,10.00,EUR,card,ref-{i}-{'x' * 100},10.00\n"
with open("quote.csv", "w") as f:
    f.write(header + "\n" + 'BROKEN,"4111111111111111,x\n')
    for i in range(40000):
        f.write(row(i))
with open("long.jsonl", "wb") as f:
    f.write(b"x" * (100 << 20) + b"\n")
    f.write(b'{"order_id":"J-1","placed_at":"2026-11-25T22:14:03Z","customer_email":"a@b.co","currency":"EUR","payment_method":"card","payment_ref":"r","payment_amount":"10.00","items":[{"sku":"SKU-1","quantity":1,"unit_price":"10.00"}]}\n')
# A sparse file of 10 GB: NUL bytes, no line feed.
with open("sparse.csv", "wb") as f:
    f.write((header + "\n").encode())
    f.truncate(10 << 30)
EOF

run() {
    local label=$1; shift
    local rc=0
    /usr/bin/time -f "%e %M" -o t.out "$bin" --db t.db "$@" >/dev/null 2>err.out || rc=$?
    read -r secs kb < <(tail -n 1 t.out)
    printf '%-40s exit %3s  %6.2f s  %7.1f MB  %s\n' "$label" "$rc" "$secs" "$(echo "$kb / 1024" | bc -l)" \
        "$(head -c 100 err.out | tr '\n' ' ')"
}

run "stray quote + 40,000 rows (7.5 MB)" process quote.csv --dry-run -q
run "100 MB JSONL line + 1 good line" process long.jsonl --dry-run -q
run "10 GB sparse CSV (NULs)" process sparse.csv --dry-run -q
run "/dev/zero as CSV" process /dev/zero --format csv
run "/dev/zero as JSONL" process /dev/zero --format jsonl
run "/dev/zero as xlsx" process /dev/zero --format xlsx
run "inventory load /dev/zero" inventory load /dev/zero --format csv
run "inventory receive /dev/zero" inventory receive /dev/zero --format jsonl
