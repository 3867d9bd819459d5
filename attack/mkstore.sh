#!/bin/bash
# Builds the attack store: 6 tenants over 3 shards (2 per shard), calls in
# every tenant, recordings big enough to flush memtables (SSTs + blob files),
# later calls left only in the WALs, one tenant purged. Usage: mkstore.sh DIR
set -e
CV=${CV:-/work/wt/attack11/build/release/tools/callvault}
D=$1; rm -rf "$D"; mkdir -p "$D"
DB=$D/store
$CV --db $DB init --max-tenants-per-shard 2 >/dev/null
for t in alpha bravo charlie delta echo foxtrot; do $CV --db $DB tenant create $t >/dev/null; done
mkcalls() { # tenant first count
python3 - "$@" <<'PY'
import json,sys
t,first,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3])
calls=[]
for i in range(first,first+n):
    calls.append({"call_id":f"call-{i:04d}","source_system":"upload","started_at":1700000000000000+i*1000000,
      "duration_ms":60000,"title":f"MARKER-{t}-{i} title",
      "participants":[{"name":f"Person {i}","email":f"p{i}@{t}.example","speaker_id":1}],
      "transcript":[{"speaker_id":1,"start_ms":0,"end_ms":1000,"text":f"MARKERTEXT-{t}-{i} "+"word "*200}]})
print(json.dumps(calls))
PY
}
for t in alpha bravo charlie delta echo foxtrot; do mkcalls $t 0 20 | $CV --db $DB call put $t - >/dev/null; done
# recordings: 9 MiB on alpha and charlie, 3 MiB on echo -> memtable flush on their shards
head -c $((9<<20)) /dev/urandom > $D/rec9; head -c $((3<<20)) /dev/urandom > $D/rec3
$CV --db $DB recording put alpha call-0001 $D/rec9 --id r1 >/dev/null 2>&1
$CV --db $DB recording put charlie call-0001 $D/rec9 --id r1 >/dev/null 2>&1
$CV --db $DB recording put echo call-0001 $D/rec3 --id r1 >/dev/null 2>&1
# more calls after the flush: only in the WALs
for t in alpha bravo charlie delta echo foxtrot; do for b in 20 30 40; do mkcalls $t $b 10 | $CV --db $DB call put $t - >/dev/null; done; done
$CV --db $DB tenant purge foxtrot --yes >/dev/null
echo built $DB
