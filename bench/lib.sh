# What bench/run.sh, bench/pg.sh and bench/prune.sh share, sourced by them once they set
# `here` (this directory); `orders` and `work` are set by the caller before use.
#
#   bench_needs TOOL...   exit 2 naming the Debian package of a missing tool
#   bench_setup           build the profiling binary ($bin; BENCH_BIN names
#                         another to time instead), generate and
#                         cache the 1x data ($data) with the generator
#   time_cmd LABEL CMD... append "LABEL wall_s rss_kb" to $work/times
#
# The order generator ($gen) is not part of this repository: it is taken from
# shared/bench/gen_orders.py beside the repository's directory, and
# bench_needs stops (exit 2) naming that path when it is missing.

root=$(dirname "$here")
gen="$root/../shared/bench/gen_orders.py"

bench_needs() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "needs $tool (Debian: apt-get install sqlite3 time python3)" >&2; exit 2; }
    done
    [ -f "$gen" ] || { echo "generator not found: $gen" >&2; exit 2; }
}

bench_setup() {
    # The release build with line tables, so that perf can read a profile of it.
    # BENCH_BIN times another build instead (an older one, to compare).
    if [ -n "${BENCH_BIN:-}" ]; then
        bin=$BENCH_BIN
    else
        (cd "$root" && cargo build --profile profiling --quiet)
        bin="$root/target/profiling/orderbatch"
    fi
    data="$here/data/$orders"
    if [ ! -f "$data/orders.jsonl" ]; then
        echo "generating $orders orders in $data ..." >&2
        python3 "$gen" "$data" --orders "$orders" --skus 20000 --bad-rate 0.02 --stock ample --format both
    fi
}

time_cmd() {
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || {
        local rc=$?
        # orderbatch exits 3 when some orders failed: that is a completed run.
        if [ "$rc" -ne 3 ]; then cat "$work/err" >&2; exit 1; fi
    }
    echo "$label $(tail -n 1 "$work/t")" >> "$work/times"
}
