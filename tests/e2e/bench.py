#!/usr/bin/env python3
"""Firmware benchmark: QEMU pairs, `send` with printing and `bench` without, N runs.

Used by tests/e2e/bench (after tests/e2e/env.sh set up the environment). A benchmark, not a
test: tests/e2e/run only calls `bench` once, briefly, to check its output.

It builds both images and the ivshmem-server like the e2e test (firmware.py) unless told
not to, starts one ivshmem-server per image pair on a private socket and shm name, and boots
each pair (host first, then remote) with the QEMU command line of Zephyr's `run` target for
qemu_cortex_a53 (TCG, `-icount shift=4,align=off,sleep=on` as the board's Kconfig sets).
The host's console is a pseudo-terminal the script types into; the remote's goes to a file
(as in the OpenAMP C sample's measurement driver, so nobody has to read it live).

Then, per run and per pair (pairs take turns, so a noisy machine slows all of them alike):

  1. `rpmsg_ivshmem send "RPMsg over IVSHMEM" <send-count>` (both consoles print every
     message): the wall time from Enter to the last echo block, per round trip;
  2. (images that have it) `rpmsg_ivshmem bench <payload> <count>` for each payload
     (default 19 bytes, "RPMsg over IVSHMEM" and its NUL, and 496): the wall time of the
     round-trip phase (Enter to its result line) per round trip, and the guest's own
     figures (round trips/s, RTT p50/p99/max, streaming messages/s and KB/s);
  3. (images that have it) `rpmsg_ivshmem doorbell <count>`: a bare doorbell ping-pong
     with no RPMsg (the host rings the remote's vector 1 and sleeps on its own, the remote
     rings back), timed like `bench`: the floor of any design that sleeps on the doorbell,
     whatever its firmware does. Its ratios to our print-free `bench` and to a print-free
     reference pair's `send` (same run) show how much of a round trip is that floor.

Wall time is what the OpenAMP C sample's reference figures are (issue 7: its driver times
`send` from Enter to the prompt on the same QEMU and machine). Under icount the guest clock
counts instructions while a guest runs (fast when it spins) and real time while it sleeps,
so the guest's figures are printed but not compared.

`--pair NAME:HOST_ELF:REMOTE_ELF` adds another image pair, e.g. the OpenAMP C sample built
elsewhere, measured in the same runs (only `send` if its host has no `bench`). `--spin-off`
also builds our images with busy-polling off (CONFIG_RPMSG_IVSHMEM_SPIN_US=0: every wake-up
is a doorbell, the C sample's waiting strategy) and measures that pair in the same runs too.
The table gives median, min and max per figure and pair. Ratios between pairs come only
from samples of the same run (pairs take turns within a run); with no other pair measured,
no ratio is printed.

Idle cost (`--idle SECONDS`, default 10; 0: not measured): once every pair is linked and
before any traffic, and again after the runs, all pairs sit idle for that long side by
side, and the CPU time each QEMU process used meanwhile (all its threads' run time from
/proc/<pid>/task/*/schedstat, else utime + stime from /proc/<pid>/stat) is printed as a
share of one host CPU, per pair and side. `--runs 0`
measures the idle cost alone.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import firmware  # noqa: E402
from firmware import (  # noqa: E402
    BANNER, BOARD, HOST_READY, PROMPT, REMOTE_READY, TIMED_OUT, Failure, Guest, Rig,
    icount_flags, log, qemu_cmd)

TEXT = "RPMsg over IVSHMEM"

RT_LINE = re.compile(
    r"bench: (\d+) round trips of (\d+) bytes: (\d+) round trips/s, "
    r"RTT p50 (\d+) us, p99 (\d+) us, max (\d+) us\r*\n")
STREAM_LINE = re.compile(
    r"bench: (\d+) messages of (\d+) bytes streamed, (\d+) in flight: "
    r"(\d+) messages/s, (\d+) KB/s echoed\r*\n")
DOORBELL_LINE = re.compile(
    r"doorbell: (\d+) bare round trips on vector 1, no RPMsg: (\d+) round trips/s, "
    r"RTT p50 (\d+) us, p99 (\d+) us, max (\d+) us\r*\n")
DOORBELL_END = re.compile(r"doorbell: [^\n]*\n")
FLOOR = "doorbell ping-pong, no RPMsg (the floor of any design that sleeps on the doorbell)"
BENCH_END = re.compile(r"bench: no echo[^\n]*\n|bench: invalid[^\n]*\n|bench: the remote[^\n]*\n|"
                       + re.escape(firmware.NOT_READY))
class FileGuest:
    """A guest whose console goes to a file (nobody types into it)."""

    def __init__(self, name, cmd, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".console.log")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=open(self.log_path, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for(self, text, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with open(self.log_path, "rb") as f:
                if text.encode() in f.read():
                    return
            if self.proc.poll() is not None:
                raise Failure("%s: QEMU exited while waiting for %s" % (self.name, what))
            time.sleep(0.05)
        raise Failure("%s: no %s within %d s" % (self.name, what, timeout))

    def lines(self):
        with open(self.log_path, "rb") as f:
            return firmware.normalize(f.read())

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


class Pair:
    """One image pair on its own ivshmem-server."""

    def __init__(self, name, host_elf, remote_elf, icount, rig):
        self.name = name
        self.rig = rig
        # Copies: a rebuild elsewhere must not change the images under a running benchmark.
        self.dir = os.path.join(rig.work, name)
        os.makedirs(self.dir)
        self.host_elf = os.path.join(self.dir, "host.elf")
        self.remote_elf = os.path.join(self.dir, "remote.elf")
        shutil.copyfile(host_elf, self.host_elf)
        shutil.copyfile(remote_elf, self.remote_elf)
        with open(self.host_elf, "rb") as f:
            elf = f.read()
        self.has_bench = b"rpmsg_ivshmem bench" in elf
        self.has_doorbell = b"rpmsg_ivshmem doorbell" in elf
        # A print-free build (e.g. the C sample without its per-message printf): `send`
        # prints no echo blocks; it is timed to the prompt instead.
        self.quiet = b"at message number" not in elf
        self.icount = icount
        self.socket = os.path.join(self.dir, "ivshmem.sock")
        self.server = None
        self.host = None
        self.remote = None

    def start(self):
        shm = "rpmsg-bench-%d-%s" % (os.getpid(), self.name)
        self.server_log = open(os.path.join(self.dir, "server.log"), "wb")
        self.server = subprocess.Popen(
            [self.rig.server_bin, "-F", "-v", "-S", self.socket, "-M", shm, "-l", "4M", "-n", "2"],
            stdout=self.server_log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.exists(self.socket):
                break
            time.sleep(0.05)
        else:
            raise Failure("%s: ivshmem-server did not start" % self.name)
        log("%s: booting host then remote (ivshmem-server on %s)" % (self.name, self.socket))
        self.host = Guest("%s-host" % self.name, self.dir, self.socket, self.dir,
                          cmd=qemu_cmd(self.host_elf, self.socket, self.icount))
        # (The C sample prints no boot banner; its first line is about the shared memory.)
        self.host.expect(r"\*\*\* Booting Zephyr OS|shmem mapped at|ivshmem", 60, "first console line")
        time.sleep(0.5)
        self.remote = FileGuest("%s-remote" % self.name,
                                qemu_cmd(self.remote_elf, self.socket, self.icount), self.dir)
        self.remote.wait_for(REMOTE_READY, 60, "remote banner")
        self.host.pos = 0
        self.host.expect(re.escape(HOST_READY), 60, "host banner")
        # Let the boot's deferred log lines come out, then start from a fresh prompt.
        time.sleep(1.0)
        os.write(self.host.master, b"\r")
        wait_prompt(self.host)

    def stop(self):
        for g in (self.host, self.remote):
            if g is not None:
                try:
                    g.kill()
                except Exception:  # best effort
                    pass
        self.host = self.remote = None
        if self.server is not None:
            firmware.terminate(self.server)
            self.server = None


def type_then_enter(g, line):
    """Types `line`, waits until the shell echoed it, then presses Enter; returns the
    time of the Enter."""
    data = line.encode()
    for i in range(0, len(data), 16):
        os.write(g.master, data[i:i + 16])
        time.sleep(0.02)
    g.expect(re.escape(line[-12:]), 10, "echo of the typed command")
    g.pump(0.05)
    g.mark()
    t = time.monotonic()
    os.write(g.master, b"\r")
    return t


def expect_new(g, pattern, timeout, what):
    """Like Guest.expect, but each look only searches the new output (plus a short overlap):
    a thousand echo blocks must not be searched a thousand times over, which would cost
    this script CPU time the QEMUs need."""
    rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
    deadline = time.time() + timeout
    start = g.pos
    with g.cond:
        while True:
            m = rx.search(g.raw, start)
            if m:
                g.pos = m.end()
                return m
            if g.eof:
                raise Failure("%s: console closed while waiting for %s" % (g.name, what))
            start = max(start, len(g.raw) - 256)
            left = deadline - time.time()
            if left <= 0:
                raise Failure("%s: no %s within %d s" % (g.name, what, timeout))
            g.cond.wait(left)


def wait_prompt(g):
    g.expect(re.escape(PROMPT), 10, "prompt")


def run_send(host, count, quiet=False):
    time.sleep(0.3)  # the shell drops input typed right after its prompt
    t0 = type_then_enter(host, 'rpmsg_ivshmem send "%s" %d' % (TEXT, count))
    if quiet:
        m = expect_new(host, re.escape(PROMPT) + "|" + re.escape(TIMED_OUT), 30 + count * 0.02, "prompt")
        t1 = time.monotonic()
        if TIMED_OUT.encode() in m.group(0):
            raise Failure("send timed out")
        return (t1 - t0) / count * 1e3
    m = expect_new(host, re.escape("at message number %d" % count) + r"\r*\n|" + re.escape(TIMED_OUT),
                   30 + count * 0.02, "last echo")
    t1 = time.monotonic()
    if TIMED_OUT.encode() in m.group(0):
        raise Failure("send timed out")
    wait_prompt(host)
    return (t1 - t0) / count * 1e3


def run_bench(host, payload, count):
    time.sleep(0.3)
    t0 = type_then_enter(host, "rpmsg_ivshmem bench %d %d" % (payload, count))
    m = expect_new(host, RT_LINE.pattern + "|" + BENCH_END.pattern, 30 + count * 0.02, "bench round trips")
    t1 = time.monotonic()
    rt = RT_LINE.match(m.group(0).decode("utf-8", "replace"))
    if not rt:
        raise Failure("bench failed: %r" % m.group(0))
    m = expect_new(host, STREAM_LINE.pattern + "|" + BENCH_END.pattern, 30 + count * 0.02, "bench stream")
    t2 = time.monotonic()
    st = STREAM_LINE.match(m.group(0).decode("utf-8", "replace"))
    if not st:
        raise Failure("bench stream failed: %r" % m.group(0))
    wait_prompt(host)
    return {
        "wall_ms_per_rt": (t1 - t0) / count * 1e3,
        "wall_stream_msgs_s": count / (t2 - t1),
        "guest_rt_s": int(rt.group(3)),
        "guest_p50_us": int(rt.group(4)),
        "guest_p99_us": int(rt.group(5)),
        "guest_max_us": int(rt.group(6)),
        "guest_stream_msgs_s": int(st.group(4)),
        "guest_stream_kb_s": int(st.group(5)),
    }


def run_doorbell(host, count):
    """`rpmsg_ivshmem doorbell <count>`: wall time (Enter to the result line) per round trip,
    and the guest's own figures."""
    time.sleep(0.3)
    t0 = type_then_enter(host, "rpmsg_ivshmem doorbell %d" % count)
    m = expect_new(host, DOORBELL_END.pattern, 30 + count * 0.02, "doorbell result")
    t1 = time.monotonic()
    d = DOORBELL_LINE.match(m.group(0).decode("utf-8", "replace"))
    if not d:
        raise Failure("doorbell failed: %r" % m.group(0))
    wait_prompt(host)
    return {"wall_ms_per_rt": (t1 - t0) / count * 1e3, "guest_rt_s": int(d.group(2)),
            "guest_p50_us": int(d.group(3)), "guest_p99_us": int(d.group(4)),
            "guest_max_us": int(d.group(5))}


def cpu_seconds(pid):
    """CPU time of process `pid` so far, in seconds: the run time of all its threads from
    /proc/<pid>/task/*/schedstat (nanoseconds), else utime + stime from /proc/<pid>/stat
    (clock ticks: 10 ms, i.e. 0.1 % of a CPU over 10 s, too coarse for an idle guest)."""
    try:
        total = 0
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat: 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pairs, seconds):
    """Every pair idle for `seconds`, side by side: {pair: (host share, remote share)} of
    one host CPU used by each QEMU process meanwhile."""
    pids = {p.name: (p.host.qemu_pid, p.remote.proc.pid) for p in pairs}
    before = {n: [cpu_seconds(pid) for pid in ps] for n, ps in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    after = {n: [cpu_seconds(pid) for pid in ps] for n, ps in pids.items()}
    wall = time.monotonic() - t0
    return {n: tuple((a - b) / wall for a, b in zip(after[n], before[n])) for n in pids}


def idle_rows(pairs, when, shares):
    """The idle table's rows for one measurement (`when`), in percent of one CPU."""
    lines = []
    for p in pairs:
        h, r = shares[p.name]
        lines.append("%-46s %10.3f %10.3f  %% of one CPU" % ("%s: idle %s, host / remote" % (p.name, when),
                                                            h * 100, r * 100))
    return lines


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    qemu = subprocess.run(["qemu-system-aarch64", "--version"], capture_output=True, text=True).stdout
    qemu = qemu.split("\n")[0].replace("QEMU emulator version ", "QEMU ")
    return "%s, %d CPUs, %s, %s" % (cpu, os.cpu_count() or 0, platform.platform(), qemu)


def stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def row(name, values, unit):
    s = stats(values)
    return "%-46s %10.3f %10.3f %10.3f  %-6s" % (name, s["median"], s["min"], s["max"], unit)


def same_run_ratios(pairs, results):
    """Rows of speed-ups, each from two pairs' samples of the same runs: a printing pair's
    `send` against each of our pairs' `send`; a print-free pair's `send` against each of our
    pairs' print-free `bench` of the same payload (19 bytes: "RPMsg over IVSHMEM" and its
    NUL). Ours are the pairs that have `bench`; the others are the references."""
    ours = [p for p in pairs if p.has_bench]
    others = [p for p in pairs if not p.has_bench]
    lines = []
    for ref in others:
        theirs = results[ref.name]["send"]
        for our in ours:
            if ref.quiet:
                mine = [b["wall_ms_per_rt"] for b in results[our.name]["bench"].get(19, [])]
                what = "%s send / %s bench 19 B" % (ref.name, our.name)
            else:
                mine = results[our.name]["send"]
                what = "%s send / %s send" % (ref.name, our.name)
            if theirs and mine:
                lines.append(row("speed-up, run by run: %s" % what,
                                 [t / o for t, o in zip(theirs, mine)], "x"))
    if not lines:
        lines.append("no speed-up: no reference pair (--pair) was measured in these runs")
    return lines


def floor_ratios(pairs, results):
    """Rows of the doorbell ping-pong's share of a round trip, run by run: each of our pairs'
    floor against its own print-free `bench` of 19 bytes and against each print-free
    reference pair's `send` of the same runs."""
    lines = []
    for our in [p for p in pairs if p.has_doorbell]:
        floor = [d["wall_ms_per_rt"] for d in results[our.name]["doorbell"]]
        mine = [b["wall_ms_per_rt"] for b in results[our.name]["bench"].get(19, [])]
        versus = [("%s bench 19 B" % our.name, mine)]
        versus += [("%s send" % ref.name, results[ref.name]["send"])
                   for ref in pairs if ref.quiet and not ref.has_bench]
        for what, theirs in versus:
            if floor and theirs:
                lines.append(row("run by run: %s floor / %s" % (our.name, what),
                                 [f / t for f, t in zip(floor, theirs)], "x"))
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-root", default=os.environ.get("RPMSG_E2E_BUILD"))
    p.add_argument("--cmake", default=os.environ.get("FW_CMAKE_ARGS", ""))
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--count", type=int, default=1000, help="round trips per bench (max 2000)")
    p.add_argument("--send-count", type=int, default=1000, help="messages per send")
    p.add_argument("--payload", type=int, action="append",
                   help="bench payload size (repeatable; default 19 and 496)")
    p.add_argument("--no-send", action="store_true", help="only the bench command")
    p.add_argument("--no-build", action="store_true", help="use the images as built")
    p.add_argument("--no-ours", action="store_true", help="only the --pair pairs")
    p.add_argument("--pair", action="append", default=[], metavar="NAME:HOST_ELF:REMOTE_ELF",
                   help="another image pair to measure in the same runs (e.g. the C sample)")
    p.add_argument("--json", metavar="FILE", help="also write every sample to FILE")
    p.add_argument("--spin-off", action="store_true",
                   help="also measure our images built with CONFIG_RPMSG_IVSHMEM_SPIN_US=0")
    p.add_argument("--keep", action="store_true", help="keep the consoles")
    p.add_argument("--idle", type=float, default=10.0, metavar="SECONDS",
                   help="idle CPU measured over this long, after link-up and after the runs (0: not)")
    a = p.parse_args()
    if not a.build_root:
        p.error("--build-root (or RPMSG_E2E_BUILD) is required")
    payloads = a.payload or [19, 496]
    rig = Rig(a.build_root, a.cmake)
    spin_rig = Rig(os.path.join(a.build_root, "spin-off"),
                   a.cmake + " -DCONFIG_RPMSG_IVSHMEM_SPIN_US=0") if a.spin_off else None
    pairs = []
    results = {}
    loads = []
    idle = []
    ok = False
    try:
        if a.no_build:
            rig.server_bin = os.path.join(a.build_root, "server-target", "release", "ivshmem-server")
            host_dir = os.path.join(a.build_root, "host")
            remote_dir = os.path.join(a.build_root, "remote")
        else:
            rig.build_server()
            host_dir = rig.build("host")
            remote_dir = rig.build("remote")
        icount = icount_flags(host_dir)
        if not a.no_ours:
            pairs.append(Pair("rust", os.path.join(host_dir, "zephyr", "zephyr.elf"),
                              os.path.join(remote_dir, "zephyr", "zephyr.elf"), icount, rig))
        if spin_rig is not None:
            spin_rig.server_bin = rig.server_bin
            dirs = [os.path.join(spin_rig.build_root, app) for app in ("host", "remote")]
            if not a.no_build:
                os.makedirs(spin_rig.build_root, exist_ok=True)
                dirs = [spin_rig.build(app) for app in ("host", "remote")]
            pairs.append(Pair("rust-spin0", *[os.path.join(d, "zephyr", "zephyr.elf") for d in dirs],
                              icount, rig))
        for spec in a.pair:
            name, h, r = spec.split(":", 2)
            pairs.append(Pair(name, os.path.expanduser(h), os.path.expanduser(r), icount, rig))
        for pair in pairs:
            pair.start()
        if a.idle > 0:
            log("all pairs idle for %.0f s after link-up" % a.idle)
            idle.append(("after link-up", idle_cpu(pairs, a.idle)))
        for pair in pairs:
            results[pair.name] = {"send": [], "bench": {n: [] for n in payloads}, "doorbell": []}
            if a.runs == 0:
                continue
            # Warm-up.
            if not a.no_send:
                run_send(pair.host, 10, pair.quiet)
            if pair.has_bench:
                run_bench(pair.host, payloads[0], 20)
            if pair.has_doorbell:
                run_doorbell(pair.host, 20)
        log("machine: %s" % machine())
        for r in range(a.runs):
            load = os.getloadavg()[0]
            loads.append(load)
            for pair in pairs:
                line = "run %d/%d %s (load %.2f):" % (r + 1, a.runs, pair.name, load)
                if not a.no_send:
                    ms = run_send(pair.host, a.send_count, pair.quiet)
                    results[pair.name]["send"].append(ms)
                    line += " send %.3f ms/rt;" % ms
                if pair.has_bench:
                    for n in payloads:
                        b = run_bench(pair.host, n, a.count)
                        results[pair.name]["bench"][n].append(b)
                        line += " bench %d: %.3f ms/rt, %.0f msgs/s (guest: %d rt/s, p50 %d us, %d msgs/s);" % (
                            n, b["wall_ms_per_rt"], b["wall_stream_msgs_s"], b["guest_rt_s"],
                            b["guest_p50_us"], b["guest_stream_msgs_s"])
                if pair.has_doorbell:
                    d = run_doorbell(pair.host, a.count)
                    results[pair.name]["doorbell"].append(d)
                    line += " doorbell: %.3f ms/rt (guest p50 %d us);" % (
                        d["wall_ms_per_rt"], d["guest_p50_us"])
                log(line)
        if a.idle > 0 and a.runs > 0:
            # The consoles' last lines and deferred logs come out first.
            time.sleep(1.0)
            log("all pairs idle for %.0f s after the runs" % a.idle)
            idle.append(("after traffic", idle_cpu(pairs, a.idle)))
        ok = True
    except Failure as e:
        log("FAILED: %s" % e)
        for pair in pairs:
            for g in (pair.host, pair.remote):
                if g is not None:
                    print("---------------- %s console (last 30 lines) ----------------" % g.name)
                    for line in g.lines()[-30:]:
                        print(line)
    finally:
        for pair in pairs:
            pair.stop()
        rig.cleanup(keep_logs=not ok or a.keep)
        if spin_rig is not None:
            spin_rig.cleanup(keep_logs=False)
    if not ok:
        return 1

    print()
    print("machine: %s" % machine())
    if loads:
        print("load average (1 min) at the runs: median %.2f (%.2f-%.2f)" % (
            statistics.median(loads), min(loads), max(loads)))
    print("%d runs; send: %d messages; bench: %d round trips, then %d streamed, 8 in flight" % (
        a.runs, a.send_count, a.count, a.count))
    print("wall: real time seen by this script; guest: the host image's own clock (icount)")
    print()
    print("%-46s %10s %10s %10s  %-6s" % ("", "median", "min", "max", "unit"))
    for pair in pairs:
        res = results[pair.name]
        if res["send"]:
            if pair.quiet:
                print(row("%s: send (print-free build), wall" % pair.name, res["send"], "ms/rt"))
            else:
                print(row("%s: send (printing), wall" % pair.name, res["send"], "ms/rt"))
        for n in payloads:
            rs = res["bench"][n]
            if not rs:
                continue
            print(row("%s: bench %d B round trips, wall" % (pair.name, n),
                      [b["wall_ms_per_rt"] for b in rs], "ms/rt"))
            # (The stream's wall rate is in the JSON only: a thousand messages take a few
            # milliseconds, too short to time from outside through the console.)
            for key, label, unit in (("guest_rt_s", "round trips", "rt/s"),
                                     ("guest_p50_us", "RTT p50", "us"),
                                     ("guest_p99_us", "RTT p99", "us"),
                                     ("guest_max_us", "RTT max", "us"),
                                     ("guest_stream_msgs_s", "stream", "msgs/s"),
                                     ("guest_stream_kb_s", "stream", "KB/s")):
                print(row("%s: bench %d B %s, guest" % (pair.name, n, label), [b[key] for b in rs], unit))
    for line in same_run_ratios(pairs, results):
        print(line)
    floors = [p for p in pairs if results[p.name]["doorbell"]]
    if floors:
        print(FLOOR + ":")
        for pair in floors:
            ds = results[pair.name]["doorbell"]
            print(row("%s: doorbell ping-pong, wall" % pair.name, [d["wall_ms_per_rt"] for d in ds], "ms/rt"))
            for key, label, unit in (("guest_p50_us", "RTT p50", "us"), ("guest_p99_us", "RTT p99", "us")):
                print(row("%s: doorbell ping-pong %s, guest" % (pair.name, label), [d[key] for d in ds], unit))
        for line in floor_ratios(pairs, results):
            print(line)
    if idle:
        print()
        print("idle CPU per QEMU process over %.0f s, every pair idle at the same time:" % a.idle)
        print("%-46s %10s %10s" % ("", "host", "remote"))
        for when, shares in idle:
            for line in idle_rows(pairs, when, shares):
                print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "runs": a.runs, "count": a.count, "loads": loads,
                       "send_count": a.send_count, "results": results,
                       "idle_seconds": a.idle, "idle_cpu_share": dict(idle)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
