# perf_shares.awk -- where the daemon's threads spend their time, from
# `perf script -F comm,tid,ip,sym` of a call-graph recording (bench/run
# --perf). Prints one "share" line per named function: the percentage of
# a thread's samples whose stack holds it (inclusive, counted once per
# sample), for the worker (the thread with the most samples besides the
# main one) and, for the loop's entry points, the main thread.
#
#   awk -v main_tid=PID -f bench/perf_shares.awk perf.txt
#
# Output lines: "samples THREAD N" and "share THREAD FUNCTION PERCENT".

function flush_sample(   f) {
    if (tid == "")
        return
    samples[tid]++
    for (f in seen)
        hits[tid, f]++
    delete seen
    tid = ""
}

BEGIN {
    # What the README tables name, worker side and loop side.
    n = split("aw_store_put_event aw_store_put_entry aw_store_commit " \
              "store_request_tiers_settle aw_detectors_on_event " \
              "aw_detectors_on_call aw_detectors_on_revocations " \
              "aw_detectors_advance aw_store_query_events sqlite3_step " \
              "ZSTD_compress2 aw_sha256 __libc_pwrite64 __libc_pread64 " \
              "fdatasync aw_event_decode_audit aw_hmac_verify_audit " \
              "aw_json_validate redisProcessCallbacks", names, " ")
    for (i = 1; i <= n; i++)
        wanted[names[i]] = 1
}

/^[^ \t]/ { flush_sample(); tid = $2; next }
/^$/ { flush_sample(); next }
{
    sym = $2
    if (sym in wanted)
        seen[sym] = 1
}

END {
    flush_sample()
    worker = ""
    for (t in samples)
        if (t != main_tid && (worker == "" || samples[t] > samples[worker]))
            worker = t
    for (t in samples) {
        role = t == main_tid ? "loop" : t == worker ? "worker" : ""
        if (role == "")
            continue
        print "samples", role, samples[t]
        for (i = 1; i <= n; i++)
            if ((t, names[i]) in hits)
                printf "share %s %s %.1f\n", role, names[i],
                       100 * hits[t, names[i]] / samples[t]
    }
}
