#!/usr/bin/env python3
"""Hand damage of every kind of file of a copy of the attack store (mkstore.sh),
then what an operator sees: tenant list/show, stats, verify (exit code), audit,
every tenant's calls and recordings, a writable open (repair), the same again,
and a second writable open. Flags SILENT LOSS when verify exits 0 after an
acknowledged call or recording is missing or different, LEAK when a stderr line
names a tenant id, marker content or an email.
Usage: damage_matrix.py BASE_DIR WORK_DIR [filter-substring]"""
import os, re, shutil, subprocess, sys, glob, hashlib
CV = os.environ.get("CV", "/work/wt/attack11/build/release/tools/callvault")
BASE, WORK = sys.argv[1], sys.argv[2]
FILT = sys.argv[3] if len(sys.argv) > 3 else ""
LIVE = ["alpha", "bravo", "charlie", "delta", "echo"]
RECS = {"alpha": "rec9", "charlie": "rec9", "echo": "rec3"}
def sha(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()
REC_SHA = {t: sha(os.path.join(BASE, f)) for t, f in RECS.items()}

def run(db, *args, timeout=120):
    try:
        p = subprocess.run([CV, "--db", db, *args], capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return "TIMEOUT", "", ""

LEAK_RE = re.compile(r"MARKER|@[a-z]+\.example|\b(alpha|bravo|charlie|delta|echo|foxtrot)\b")
def leaks(err):
    # the CLI's own "tenant X" progress lines are not error messages; look at "callvault:" lines
    return [l for l in err.splitlines() if l.startswith("callvault:") and LEAK_RE.search(l)]

def observe(db, tag, out):
    st = {}
    rc, o, e = run(db, "tenant", "list")
    st["list"] = rc
    out.append(f"  [{tag}] tenant list rc={rc} {first_err(e)}")
    dmg = [l.split()[0] for l in o.splitlines() if "(damaged)" in l or "damaged" in l.split()[1:2]]
    rc, o, e = run(db, "stats")
    st["stats"] = rc
    dl = [l.strip() for l in o.splitlines() if "DAMAGED" in l]
    out.append(f"  [{tag}] stats rc={rc} damaged_lines={dl} {first_err(e)}")
    rc, o, e = run(db, "verify")
    st["verify"] = rc
    summ = [l for l in o.splitlines() if l.startswith(("OK", "FAILED", "DAMAGED", "FAIL"))]
    out.append(f"  [{tag}] verify rc={rc} {summ[-3:] if summ else o.strip().splitlines()[-2:] if o.strip() else ''} {first_err(e)}")
    lost = []
    served = []
    for t in LIVE:
        rc, o, e = run(db, "call", "list", t, "--limit", "1000")
        n = max(0, len(o.strip().splitlines()) - 1) if rc == 0 else None
        rcs, os_, es = run(db, "tenant", "show", t)
        dline = [l for l in os_.splitlines() if l.startswith(("state", "damage"))]
        if rc == 0 and n != 50: lost.append(f"{t}: {n}/50 calls")
        if rc != 0: served.append(f"{t}: list rc={rc} {first_err(e)}")
        if t in RECS and rc == 0:
            p = os.path.join(WORK, "rec.out")
            rr, _, re_ = run(db, "recording", "get", t, "call-0001", "r1", "--output", p)
            if rr == 0:
                if sha(p) != REC_SHA[t]: lost.append(f"{t}: recording DIFFERS")
            else:
                served.append(f"{t}: recording get rc={rr} {first_err(re_)}")
        for l in leaks(e) + leaks(es): out.append(f"  LEAK: {l}")
        if any("damaged" in l for l in dline): out.append(f"  [{tag}] show {t}: {dline}")
    out.append(f"  [{tag}] calls short: {lost}  not served: {served}")
    if st["verify"] == 0 and lost:
        out.append(f"  *** SILENT LOSS [{tag}]: verify exit 0 with {lost}")
    return st

def first_err(e):
    ls = [l for l in e.splitlines() if l.startswith("callvault:")]
    return ("ERR: " + ls[0][:300]) if ls else ""

def mutate(path, kind, arg):
    data = bytearray(open(path, "rb").read())
    n = len(data)
    if kind == "flip":
        off = int(n * arg); data[off] ^= 0x10
    elif kind == "zero":
        off = int(n * arg[0]); data[off:off + arg[1]] = bytes(min(arg[1], n - off))
    elif kind == "trunc":
        data = data[:int(n * arg)]
    open(path, "wb").write(bytes(data))

def case(name, rel, kind, arg):
    if FILT and FILT not in name: return
    w = os.path.join(WORK, "m")
    shutil.rmtree(w, ignore_errors=True)
    shutil.copytree(BASE, w, symlinks=True)
    db = os.path.join(w, "store")
    paths = sorted(glob.glob(os.path.join(w, rel)))
    if not paths:
        print(f"== {name}: no file {rel}"); return
    p = paths[0]
    mutate(p, kind, arg)
    out = [f"== {name}: {os.path.relpath(p, w)} {kind} {arg}"]
    observe(db, "ro-1", out)
    rc, o, e = run(db, "purges", "run")
    out.append(f"  [rw-1] purges run rc={rc} {first_err(e)}")
    for l in leaks(e): out.append(f"  LEAK: {l}")
    observe(db, "after-rw-1", out)
    rc, o, e = run(db, "purges", "run")
    out.append(f"  [rw-2] purges run rc={rc} {first_err(e)}")
    observe(db, "after-rw-2", out)
    rc, o, e = run(db, "audit", "list")
    kinds = [l for l in o.splitlines() if re.search(r"damage", l)]
    out.append(f"  audit rc={rc} damage events: {len(kinds)} {[re.sub(' +',' ',k)[:200] for k in kinds][:4]} {first_err(e)}")
    for l in kinds:
        if LEAK_RE.search(l.split(None, 3)[3] if len(l.split(None,3))>3 else ""): pass
    print("\n".join(out), flush=True)

S0 = "store/shards/0000/"; S2 = "store/shards/0002/"; M = "store/meta/"; K = "store.keys/"
cases = [
  ("shardwal-mid-old-flip", S0 + "000082.log", "flip", 0.5),
  ("shardwal-mid-old-zero", S0 + "000082.log", "zero", (0.4, 64)),
  ("shardwal-old-trunc", S0 + "000082.log", "trunc", 0.5),
  ("shardwal-newest-mid-flip", S0 + "000094.log", "flip", 0.5),
  ("shardwal-big-mid-flip", S2 + "000048.log", "flip", 0.5),
  ("shardwal-big-mid-zero", S2 + "000048.log", "zero", (0.5, 4096)),
  ("shardwal-big-trunc", S2 + "000048.log", "trunc", 0.5),
  ("sst-data-flip", S0 + "000061.sst", "flip", 0.3),
  ("sst-footer-flip", S0 + "000061.sst", "flip", 0.995),
  ("sst-trunc", S0 + "000061.sst", "trunc", 0.5),
  ("sst-small-flip", S0 + "000063.sst", "flip", 0.5),
  ("blob-mid-flip", S0 + "000062.blob", "flip", 0.5),
  ("blob-zero", S0 + "000062.blob", "zero", (0.3, 4096)),
  ("blob-trunc", S0 + "000062.blob", "trunc", 0.5),
  ("blob-header-flip", S0 + "000062.blob", "flip", 0.000001),
  ("options-flip", S0 + "OPTIONS-*", "flip", 0.5),
  ("options-trunc", S0 + "OPTIONS-*", "trunc", 0.3),
  ("options-newest-trunc0", S0 + "OPTIONS-000149", "trunc", 0.0),
  ("identity-flip", S0 + "IDENTITY", "flip", 0.5),
  ("identity-trunc0", S0 + "IDENTITY", "trunc", 0.0),
  ("shard-manifest-flip", S0 + "MANIFEST-*", "flip", 0.5),
  ("meta-wal-flip", M + "000140.log", "flip", 0.5),
  ("meta-wal-old-flip", M + "000008.log", "flip", 0.5),
  ("meta-wal-zero", M + "000140.log", "zero", (0.3, 32)),
  ("meta-manifest-flip", M + "MANIFEST-*", "flip", 0.5),
  ("meta-options-flip", M + "OPTIONS-000143", "flip", 0.5),
  ("meta-identity-flip", M + "IDENTITY", "flip", 0.5),
  ("kek-flip", K + "KEK-*", "flip", 0.5),
  ("kek-trunc", K + "KEK-*", "trunc", 0.5),
  ("keyring-flip", K + "KEYRING-*", "flip", 0.5),
  ("keyring-trunc", K + "KEYRING-*", "trunc", 0.5),
  ("signing-flip", K + "SIGNING-KEY", "flip", 0.5),
  ("signing-trunc", K + "SIGNING-KEY", "trunc", 0.5),
  ("signing-trunc0", K + "SIGNING-KEY", "trunc", 0.0),
  ("store-header-flip", "store/CALLVAULT*", "flip", 0.5),
]
for c in cases: case(*c)
