#!/usr/bin/env python3
"""scripts/bench_report.py on synthetic harness JSON (issue 14 item 3).

Shows: every table of the report prints the load average of its run, and a bold
warning exactly when a 1-minute figure was above 1.5 (2.0 warns, 1.0 and 1.5 do
not); the goals table computes "met" from the run's own figures, and a goal with
no figure in the run says "not measured in this run"; the ingest paragraph says
how many times the data outgrows the memtables, and flags a run below 10x; the
many-active-tenants goals (issue 14 item 4) come from the tenant-scale phase's
"active" step, and a count callvault did not reach proves nothing.

    bench_report_test.py [path/to/bench_report.py]
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "bench_report.py")
WARNING = "**Warning: the 1-minute load average"
SECTIONS = ["## Goals", "## Ingest", "## Point gets and lists", "## Bytes on disk after full compaction",
            "## Scale point", "## Recordings"]


def summary(x):
    return {"median": x, "min": x, "max": x, "runs": [x]}


def budget(tenants):
    one = {"shared_budget_bytes": 256 << 20, "write_buffer_bytes": 8 << 20, "max_write_buffers": 2,
           "holds_bytes": {str(n): min(256 << 20, n * 16 << 20) for n in tenants}}
    return {"callvault": one, "rocksdb": dict(one)}


def harness(load, calls=20000, sync_ratio=1.1, group_ratio=0.5):
    window = {"start": f"{load:.2f} 0.50 0.50", "end": "0.50 0.50 0.50"}
    quiet = {"start": "0.10 0.10 0.10", "end": "0.10 0.10 0.10"}
    reads = {k: summary(v) for k, v in {
        "disk_total_bytes": 4e8, "disk_sst_bytes": 4e8, "disk_blob_bytes": 0, "disk_wal_bytes": 0,
        "compact_seconds": 1.0, "get_all_p50_us": 60, "get_all_p99_us": 600, "list_time_p50_us": 1000,
        "list_time_p99_us": 2000, "list_time_mean_page": 100}.items()}
    ingest = {}
    for mode, r in (("sync", sync_ratio), ("group", group_ratio)):
        for th in (1, 2):
            ingest[f"callvault/{mode}/{th}"] = {"calls_per_s": summary(1000 * r), "mb_per_s": summary(48 * r),
                                                "cpu_ms_per_call": summary(1.0)}
            ingest[f"rocksdb/{mode}/{th}"] = {"calls_per_s": summary(1000), "mb_per_s": summary(48),
                                              "cpu_ms_per_call": summary(1.0)}
    scale_sys = {"disk_total_bytes": 2e9, "disk_sst_bytes": 2e9, "disk_blob_bytes": 0, "disk_wal_bytes": 0,
                 "disk_files": 60, "ingest_seconds": 60, "ingest_calls_per_s": 1600, "compact_seconds": 10,
                 "get_all_p50_us": 60, "get_all_p99_us": 700, "list_time_p50_us": 1500, "list_time_p99_us": 3000,
                 "list_owner_p50_us": 1200, "list_owner_p99_us": 2500, "list_time_mean_page": 100,
                 "list_owner_mean_page": 100, "loadavg": quiet}
    return {
        "mode": "full", "reps": 1, "started": "2026-01-01T00:00:00Z", "duration_s": 60,
        "machine": {"cpu_model": "test", "cores": 2, "memory_bytes": 2**34, "kernel": "k", "compiler": "c",
                    "build_type": "Release", "asserts": False, "rocksdb": "7.8.3", "libsodium": "1",
                    "zstd": "1", "loadavg_at_start": "0.10 0.10 0.10", "loadavg_at_end": "0.10 0.10 0.10"},
        "workload": {"calls": calls, "sync_calls": 2000, "batch": 100, "transcript_scale": 1.0,
                     "logical_bytes": calls * 48000, "logical_bytes_sync": 2000 * 48000, "gets": 4000,
                     "lists": 400, "list_window_days": 30, "ingest": ingest,
                     "reads": {"callvault": reads, "rocksdb": reads}, "memtable_budget": budget([1, 2]),
                     "rep_loadavg": [window], "phase_loadavg": window},
        "scale": {"calls": 100000, "transcript_scale": 1.0, "batch": 100, "gets": 4000, "lists": 400,
                  "list_window_days": 30, "logical_bytes": 100000 * 48000, "memtable_budget": budget([1]),
                  "callvault": dict(scale_sys), "rocksdb": dict(scale_sys, disk_total_bytes=2.1e9),
                  "phase_loadavg": window},
        "recordings": {"bytes": 64 << 20, "append_bytes": 256 << 10,
                       "callvault": {"write_mb_per_s": summary(300), "read_mb_per_s": summary(900)},
                       "rocksdb": {"write_mb_per_s": summary(400), "read_mb_per_s": summary(1000)},
                       "synced_file_write_mb_per_s": summary(1000), "aead_open_mb_per_s": summary(1000),
                       "callvault_write_vs_synced_file": summary(0.3), "callvault_read_vs_aead": summary(0.9),
                       "loadavg": ["0.50 0.50 0.50"], "rep_loadavg": [window], "phase_loadavg": window},
    }


def render(h):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "harness.json")
        with open(path, "w") as f:
            json.dump(h, f)
        doc = os.path.join(d, "benchmarks.md")
        subprocess.run([sys.executable, SCRIPT, "--harness", path, "--micro", os.path.join(d, "none.json"),
                        "--doc", doc, "--img", os.path.join(d, "img")], check=True, stdout=subprocess.DEVNULL)
        with open(doc) as f:
            return f.read()


def section(doc, title):
    start = doc.index(title)
    end = doc.find("\n## ", start + 1)
    return doc[start:end if end >= 0 else len(doc)]


class LoadWarning(unittest.TestCase):
    def test_high_load_warns_under_every_table(self):
        doc = render(harness(load=2.0))
        for title in SECTIONS:
            text = section(doc, title)
            self.assertIn("Load average", text, title)
            self.assertIn(WARNING, text, title)
            self.assertIn("2.00", text, title)

    def test_quiet_run_does_not_warn(self):
        for load in (1.0, 1.5):  # "above 1.5" warns; 1.5 itself does not
            doc = render(harness(load=load))
            self.assertNotIn(WARNING, doc, load)
            for title in SECTIONS:
                self.assertIn("Load average", section(doc, title), (title, load))

    def test_a_start_end_pair_in_one_string_counts_both(self):
        h = harness(load=1.0)
        h["recordings"]["loadavg"] = ["0.50 0.50 0.50 / 2.00 0.50 0.50"]  # backup_bench's form
        self.assertIn(WARNING, section(render(h), "## Recordings"))


class Goals(unittest.TestCase):
    def row(self, doc, goal):
        for line in section(doc, "## Goals").splitlines():
            if line.startswith("| " + goal):
                return line
        self.fail(f"no goal row starting with {goal!r}")

    def test_met_is_computed_from_the_run(self):
        doc = render(harness(load=1.0, sync_ratio=1.1, group_ratio=0.5))
        self.assertIn("1.10×", self.row(doc, "synced single puts ≥ 1.0× raw calls/s, 1 thread"))
        self.assertIn("**met**", self.row(doc, "synced single puts ≥ 1.0× raw calls/s, 1 thread"))
        self.assertIn("**not met**", self.row(doc, "group-commit ingest ≥ 0.9× raw calls/s, 2 threads"))
        doc = render(harness(load=1.0, sync_ratio=0.9, group_ratio=1.0))
        self.assertIn("**not met**", self.row(doc, "synced single puts ≥ 1.0× raw calls/s, 2 threads"))
        self.assertIn("**met**", self.row(doc, "group-commit ingest ≥ 0.9× raw calls/s, 1 thread"))
        self.assertIn("**met**", self.row(doc, "bytes on disk ≤ 1.0× raw after compaction (scale point"))
        self.assertIn("**not met**", self.row(doc, "recordings write ≥ 0.7×"))
        self.assertIn("**met**", self.row(doc, "recordings read ≥ 0.6×"))

    def test_goals_without_figures_are_not_met(self):
        h = harness(load=1.0)
        del h["scale"], h["recordings"]
        doc = render(h)
        for goal in ("purge call returns < 50 ms at 100,000 calls", "bytes on disk ≤ 1.0× raw after compaction",
                     "recordings write ≥ 0.7×", "resident memory < 1 GiB at 10,000 active tenants"):
            row = self.row(doc, goal)
            self.assertIn("not measured in this run", row)
            self.assertNotIn("met**", row)


class SteadyState(unittest.TestCase):
    def test_ratio_to_the_memtables_is_stated(self):
        text = section(render(harness(load=1.0, calls=20000)), "## Ingest")
        self.assertIn("57× with 1 tenant", text)  # 960 MB / 16 MiB
        self.assertIn("29× with 2 tenants", text)  # 960 MB / 32 MiB
        self.assertNotIn("not a steady-state run", text)

    def test_a_short_run_is_flagged(self):
        text = section(render(harness(load=1.0, calls=5000)), "## Ingest")
        self.assertIn("not a steady-state run", text)


def tenants(counts, steady, busy_ratio=1.5, written_ratio=0.9, rss=500 << 20, reached=None, peak_rss=None,
            dictionaries=None, open_heap=False):
    """A tenant-scale phase whose counts carry the "active" step (issue 14 item 4): callvault's steady
    rate at each count from `steady`, raw RocksDB at 1,000 calls/s everywhere."""
    window = {"start": "0.50 0.50 0.50", "end": "0.50 0.50 0.50"}

    def active(rate, written, mem, n, cv):
        return {"live_tenants": n, "calls": 100000, "batch_size": 5, "calls_per_s": rate,
                "steady_calls_per_s": rate, "batch": {"p50_ms": 1.0, "p99_ms": 5.0},
                "idle_get": {"p99_ms": 0.1}, "busy_get": {"p99_ms": 0.1 * busy_ratio},
                "written_bytes_per_call": written, "rss_bytes": mem, "sst_files": 100, "settle_s": 2.0,
                "settled": True, "peak_rss_bytes": (peak_rss or mem) if cv else mem,
                "memtable_peak_bytes": 200 << 20,
                # Every tenant's dictionary in use unless the test says otherwise.
                "memory": {"dictionaries": (n if dictionaries is None else dictionaries) if cv else 0},
                # The open's heap (a newer harness): 120 KB a tenant for callvault, 70 KB of it
                # memtables; 48 KB for raw, 2 KB of it memtables.
                **({"rounds": 4, "open_heap_bytes": n * (120000 if cv else 48000),
                    "open_memtable_bytes": n * (70000 if cv else 2000)} if open_heap else {})}

    out = {"counts": {}, "phase_loadavg": window}
    for n in counts:
        got = (reached or {}).get(n, n)
        per = {}
        for system in ("callvault", "rocksdb"):
            cv = system == "callvault"
            run = {"active": active(steady[n] if cv else 1000, 10000 * (written_ratio if cv else 1.0),
                                    rss if cv else 400 << 20, got if cv else n, cv)}
            per[system] = {k: summary(v) for k, v in {
                "create_p50_ms": 20, "create_p99_ms": 50, "purge_p50_ms": 20, "purge_max_ms": 40,
                "tenants_created": got if cv else n, "open_ms": 1000, "rss_bytes": 2e8,
                "rss_after_open_bytes": 2e8, "rss_after_one_get_each_bytes": 2e8}.items()}
            per[system]["runs"] = [run]
        per["rep_loadavg"] = [window]
        out["counts"][str(n)] = per
    return out


class ManyActiveTenants(unittest.TestCase):
    row = Goals.row
    STEADY = "steady ingest at 2,000 and 10,000 active tenants ≥ 0.9× the rate at 100"

    def test_goals_come_from_the_active_step(self):
        h = harness(load=1.0)
        h["tenants"] = tenants([100, 2000, 10000], {100: 1000, 2000: 950, 10000: 920})
        doc = render(h)
        row = self.row(doc, self.STEADY)
        self.assertIn("2,000: 0.95×", row)
        self.assertIn("10,000: 0.92×", row)
        self.assertIn("**met**", row)
        self.assertIn("**met**", self.row(doc, "get p99 during ingest ≤ 2× idle"))
        self.assertIn("**met**", self.row(doc, "disk bytes written per call ingested ≤ raw RocksDB"))
        self.assertIn("peak 500 MiB", self.row(doc, "resident memory < 1 GiB at 10,000 active tenants"))
        self.assertIn("**met**", self.row(doc, "resident memory < 1 GiB at 10,000 active tenants"))
        self.assertIn("## Many active tenants", doc)
        self.assertIn("Load average", section(doc, "## Many active tenants"))

    def test_a_slow_count_a_slow_get_and_more_bytes_are_not_met(self):
        h = harness(load=1.0)
        h["tenants"] = tenants([100, 2000, 10000], {100: 1000, 2000: 950, 10000: 600}, busy_ratio=3.0,
                               written_ratio=1.2, rss=1200 << 20)
        doc = render(h)
        self.assertIn("10,000: 0.60×", self.row(doc, self.STEADY))
        for goal in (self.STEADY, "get p99 during ingest ≤ 2× idle", "disk bytes written per call ingested",
                     "resident memory < 1 GiB at 10,000 active tenants"):
            self.assertIn("**not met**", self.row(doc, goal), goal)

    def test_memory_is_judged_at_its_peak_with_every_dictionary_in_use(self):
        h = harness(load=1.0)
        h["tenants"] = tenants([100, 2000, 10000], {100: 1000, 2000: 950, 10000: 920}, peak_rss=1500 << 20)
        row = self.row(render(h), "resident memory < 1 GiB at 10,000 active tenants")
        self.assertIn("peak 1,500 MiB (at the end 500 MiB)", row)
        self.assertIn("**not met**", row)
        h["tenants"] = tenants([100, 2000, 10000], {100: 1000, 2000: 950, 10000: 920}, dictionaries=0)
        row = self.row(render(h), "resident memory < 1 GiB at 10,000 active tenants")
        self.assertIn("**not measured as stated**", row)
        self.assertNotIn("**met**", row)

    def test_a_count_callvault_did_not_reach_proves_nothing(self):
        h = harness(load=1.0)
        h["tenants"] = tenants([100, 2000, 10000], {100: 1000, 2000: 1000, 10000: 1000},
                               reached={10000: 7000})
        doc = render(h)
        self.assertIn("**not reached**", self.row(doc, self.STEADY))
        self.assertIn("not measured in this run",
                      self.row(doc, "resident memory < 1 GiB at 10,000 active tenants"))

    def test_the_open_heap_and_rounds_are_shown_when_recorded(self):
        h = harness(load=1.0)
        h["tenants"] = tenants([100, 2000, 10000], {100: 1000, 2000: 950, 10000: 920}, open_heap=True)
        text = section(render(h), "## Many active tenants")
        heap = [l for l in text.splitlines() if "heap in use the open added" in l]
        self.assertEqual(3, len(heap))  # one per count
        self.assertIn("| 120 KB | 48.0 KB | 2.50× |", heap[0])
        mem = [l for l in text.splitlines() if "… of which memtables" in l]
        self.assertEqual(3, len(mem))
        self.assertIn("| 70.0 KB | 2.00 KB |", mem[0])
        self.assertIn("| 100,000 / 5 / 4 | 100,000 / 5 / 4 |", text)
        # A harness of before: no rows, no rounds, nothing raised.
        h["tenants"] = tenants([100, 2000, 10000], {100: 1000, 2000: 950, 10000: 920})
        text = section(render(h), "## Many active tenants")
        self.assertNotIn("heap in use the open added", text)
        self.assertIn("| 100,000 / 5 |", text)

    def test_without_the_active_step_nothing_is_met(self):
        doc = render(harness(load=1.0))  # no tenant-scale phase at all
        for goal in (self.STEADY, "get p99 during ingest ≤ 2× idle", "resident memory < 1 GiB at 10,000 active"):
            self.assertIn("not measured in this run", self.row(doc, goal), goal)



class MoveTable(unittest.TestCase):
    def render_move(self, rows):
        m = {"loadavg_at_start": "1.00 1.00 1.00", "loadavg_at_end": "1.00 1.00 1.00", "moves": rows}
        with tempfile.TemporaryDirectory() as d:
            hp, mp = os.path.join(d, "harness.json"), os.path.join(d, "move.json")
            with open(hp, "w") as f:
                json.dump(harness(load=1.0), f)
            with open(mp, "w") as f:
                json.dump(m, f)
            doc = os.path.join(d, "benchmarks.md")
            subprocess.run([sys.executable, SCRIPT, "--harness", hp, "--micro", os.path.join(d, "none.json"),
                            "--move", mp, "--doc", doc, "--img", os.path.join(d, "img")],
                           check=True, stdout=subprocess.DEVNULL)
            with open(doc) as f:
                return section(f.read(), "## Tenant moves")

    def move_row(self, **extra):
        r = {"calls": 1000, "source_bytes": 2 << 20, "move_seconds": 1.5, "copy_seconds": 1.0,
             "fence_seconds": 0.012, "writer_longest_gap_seconds": 0.02, "catch_up_rounds": 2,
             "loadavg": "1.00 1.00 1.00"}
        r.update(extra)
        return r

    def test_the_shard_move_time_is_a_column(self):
        text = self.render_move([self.move_row(shard_move_seconds=0.75, shard_move_rows=15000)])
        self.assertIn("Shard move", text)
        self.assertIn("| 0.75 s |", text)

    def test_a_run_without_the_shard_move_still_renders(self):
        text = self.render_move([self.move_row()])
        self.assertIn("Shard move", text)
        self.assertIn("| - |", text)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        SCRIPT = sys.argv.pop(1)
    unittest.main()
