#!/usr/bin/env python3
"""Dual-QEMU harness for the Zephyr images (host/ and remote/).

Used by tests/e2e/run (`firmware.py test`) and tests/e2e/demo (`firmware.py demo
<string> <count>`), after tests/e2e/env.sh set up the environment. It builds both
images and our ivshmem-server into a build directory outside the repository, starts
the server on a private socket and shared-memory name, boots the guests with
`west build -t run` (IVSHMEM_SOCKET points the QEMU wrapper at that socket) and talks
to their consoles through pseudo-terminals (Python's standard library only). Everything
it starts is killed on exit.
"""

import argparse
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARD = "qemu_cortex_a53"
PROMPT = "uart:~$ "
BANNER = "Hello %s - %s Side, the communication over RPMsg is ready to use!"
USAGE = [
    "uart:~$ rpmsg_ivshmem send",
    "send: wrong parameter count",
    "send - Usage: rpmsg_ivshmem send <string> <number of messages>",
]
NOT_READY = "RPMsg over IVSHMEM backend is not ready yet!"
# `rpmsg_ivshmem bench` result lines (full lines, after normalize()).
BENCH_RT = (r"bench: \d+ round trips of \d+ bytes: \d+ round trips/s, "
            r"RTT p50 \d+ us, p99 \d+ us, max \d+ us")
BENCH_STREAM = (r"bench: \d+ messages of \d+ bytes streamed, \d+ in flight: "
                r"\d+ messages/s, \d+ KB/s echoed")
# `rpmsg_ivshmem doorbell`'s result line: the bare doorbell ping-pong, no RPMsg.
DOORBELL_RT = (r"doorbell: \d+ bare round trips on vector 1, no RPMsg: \d+ round trips/s, "
               r"RTT p50 \d+ us, p99 \d+ us, max \d+ us")
TIMED_OUT = "Remote side response timed out!"
# The end of both banners: the C sample's images print only this part (its README
# shows "Hello <board> - " before it, as our images print it).
HOST_READY = "Host Side, the communication over RPMsg is ready to use!"
REMOTE_READY = "Remote Side, the communication over RPMsg is ready to use!"

# The lean configuration (--lean): lean.conf at the repository root on top of each
# image's prj.conf. Set by cmd_test.
LEAN_CONF = os.path.join(ROOT, "lean.conf")
LEAN = False
BUILD_TIMEOUT = 1200  # a clean build compiles core/alloc: ~1.5 min per image on 2 cores
BOOT_TIMEOUT = 90
LINK_TIMEOUT = 60

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def log(msg):
    print("[e2e] " + msg, flush=True)


def normalize(raw):
    """Console bytes -> lines: ANSI codes and CRs removed, prompt redraws dropped.

    Zephyr's shell redraws `uart:~$ ` after text written by another thread, and
    echoes typed characters with cursor movements; both are noise for comparisons.
    A line that is only a prompt is dropped; a prompt followed by text (a typed
    command) is kept as it is.
    """
    text = ANSI.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace")
    lines = []
    for line in text.split("\n"):
        while line.startswith(PROMPT + PROMPT):
            line = line[len(PROMPT):]
        if line.rstrip() == PROMPT.rstrip():
            continue
        # A redraw right before text written by another thread: "uart:~$ Hello ..."
        # when the prompt had nothing typed after it. Keep typed commands.
        if line.startswith(PROMPT) and not line[len(PROMPT):].startswith(("rpmsg_ivshmem", "help")):
            line = line[len(PROMPT):]
        lines.append(line)
    return lines


def find_block(lines, block, start=0):
    """Index of the first occurrence of `block` (a list of lines) in `lines` at or
    after `start`, or -1."""
    n = len(block)
    for i in range(start, len(lines) - n + 1):
        if lines[i:i + n] == block:
            return i
    return -1


def count_block(lines, block):
    count, i = 0, 0
    while True:
        i = find_block(lines, block, i)
        if i < 0:
            return count
        count += 1
        i += len(block)


def icount_flags(build_dir):
    """`-icount ...` as Zephyr's cmake/emu/qemu.cmake builds it from the image's .config."""
    cfg = {}
    try:
        for line in open(os.path.join(build_dir, "zephyr", ".config")):
            m = re.match(r"(CONFIG_QEMU_ICOUNT\w*)=(.*)", line.strip())
            if m:
                cfg[m.group(1)] = m.group(2)
    except OSError:
        pass
    if cfg.get("CONFIG_QEMU_ICOUNT") != "y":
        return []
    sleep = "on" if cfg.get("CONFIG_QEMU_ICOUNT_SLEEP") == "y" else "off"
    return ["-icount", "shift=%s,align=off,sleep=%s" % (cfg.get("CONFIG_QEMU_ICOUNT_SHIFT", "4"), sleep)]


def qemu_cmd(elf, socket, icount):
    """Zephyr's `run` target for qemu_cortex_a53 with an ivshmem doorbell (2 vectors)."""
    return (["qemu-system-aarch64", "-cpu", "cortex-a53", "-nographic",
             "-machine", "virt,gic-version=3", "-net", "none",
             "-chardev", "stdio,id=con,mux=on", "-serial", "chardev:con",
             "-mon", "chardev=con,mode=readline"] + icount +
            ["-rtc", "clock=vm",
             "-device", "ivshmem-doorbell,vectors=2,chardev=ivshmem",
             "-chardev", "socket,path=%s,id=ivshmem" % socket,
             "-kernel", elf])


def terminate(proc):
    """SIGTERM, then SIGKILL if `proc` has not exited within 5 s."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Failure(Exception):
    pass


class Guest:
    """One QEMU guest started with `west build -d <dir> -t run` on a pseudo-terminal.

    A reader thread drains the console all the time (a guest whose console is not
    read would block on a full terminal), appending to `raw`; `expect` searches it
    from a cursor, like pexpect, without needing pexpect.
    """

    def __init__(self, name, build_dir, socket, logdir, echo=None, cmd=None):
        """`cmd`: run this QEMU command line directly instead of `west build -t run`
        (then the console starts at once, and QEMU is the process itself)."""
        self.name = name
        self.build_dir = build_dir
        self.raw = bytearray()
        self.pos = 0
        self.eof = False
        self.echo = echo
        self._echo_carry = b""
        self.cond = threading.Condition()
        self.log_path = os.path.join(logdir, name + ".console.log")
        self.log_file = open(self.log_path, "wb")
        if cmd is None:
            pidfile = os.path.join(build_dir, "qemu.pid")
            if os.path.exists(pidfile):
                os.unlink(pidfile)
        env = dict(os.environ, IVSHMEM_SOCKET=socket)
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            cmd or ["west", "build", "-d", build_dir, "-t", "run"],
            stdin=slave, stdout=slave, stderr=slave, env=env,
            start_new_session=True, close_fds=True)
        os.close(slave)
        self.master = master
        self.qemu_pid = self.proc.pid if cmd else None
        self.start = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.raw.extend(data)
                self.cond.notify_all()
            self.log_file.write(data)
            self.log_file.flush()
            echo = self.echo
            if echo is not None:
                self._echo(echo, data)

    def _echo(self, out, data):
        """Live output without escape sequences; one cut at a chunk's end is kept for
        the next chunk."""
        data = self._echo_carry + data
        cut = data.rfind(b"\x1b")
        if cut >= 0 and not ANSI.match(data, cut) and len(data) - cut < 16:
            data, self._echo_carry = data[:cut], data[cut:]
        else:
            self._echo_carry = b""
        out.buffer.write(ANSI.sub(b"", data).replace(b"\r", b""))
        out.flush()

    def qemu(self):
        if self.qemu_pid is None:
            try:
                with open(os.path.join(self.build_dir, "qemu.pid")) as f:
                    self.qemu_pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
        return self.qemu_pid

    def expect(self, pattern, timeout, what):
        """Waits until `pattern` (a regex over the raw console bytes) appears after the
        cursor; moves the cursor past it. `timeout` None: no limit."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = None if timeout is None else time.time() + timeout
        with self.cond:
            while True:
                m = rx.search(self.raw, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                if self.eof:
                    raise Failure("%s: console closed while waiting for %s" % (self.name, what))
                if deadline is None:
                    self.cond.wait(1.0)
                    continue
                left = deadline - time.time()
                if left <= 0:
                    raise Failure("%s: no %s within %d s" % (self.name, what, timeout))
                self.cond.wait(left)

    def pump(self, seconds):
        """Lets output arrive for `seconds` (the reader thread collects it)."""
        time.sleep(seconds)

    def type(self, line):
        """Types a command line in small pieces (the guest UART has small buffers),
        then Enter."""
        data = line.encode()
        for i in range(0, len(data), 16):
            os.write(self.master, data[i:i + 16])
            time.sleep(0.02)
        os.write(self.master, b"\r")

    def lines(self, since=None):
        """The console as normalized lines, from `since` (a mark) or from QEMU's start."""
        with self.cond:
            raw = bytes(self.raw[self.start if since is None else since:])
        return normalize(raw)

    def mark(self):
        with self.cond:
            self.pos = len(self.raw)
            return self.pos

    def mark_prompt(self):
        """Like `mark`, but returns where the last prompt starts (so the lines from it
        include `uart:~$ <typed command>`)."""
        with self.cond:
            self.pos = len(self.raw)
            i = self.raw.rfind(PROMPT.encode(), self.start)
            return i if i >= 0 else self.pos

    def kill_qemu(self):
        """SIGKILL to QEMU alone (a crash, as far as the other side can tell)."""
        pid = self.qemu()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill(self):
        self.kill_qemu()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.reader.join(5)
        try:
            os.close(self.master)
        except OSError:
            pass
        self.log_file.close()


class Rig:
    """Builds, runs the server, starts and stops guests; cleans up everything."""

    def __init__(self, build_root, extra_cmake):
        self.build_root = build_root
        self.extra_cmake = extra_cmake.split() if extra_cmake else []
        self.work = tempfile.mkdtemp(prefix="rpmsg-e2e.")
        self.socket = os.path.join(self.work, "ivshmem.sock")
        self.shm = "rpmsg-e2e-%d" % os.getpid()
        self.server = None
        self.guests = []
        self.natives = []

    def build(self, app):
        out = os.path.join(self.build_root, app)
        logf = os.path.join(self.build_root, app + ".build.log")
        cmd = ["west", "build", "-p", "auto", "-b", BOARD, "-d", out,
               os.path.join(ROOT, app)]
        if self.extra_cmake:
            cmd += ["--"] + self.extra_cmake
        log("building %s -> %s (log: %s)" % (app, out, logf))
        t = time.time()
        with open(logf, "wb") as f:
            try:
                r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                   timeout=BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise Failure("building %s took more than %d s" % (app, BUILD_TIMEOUT))
        if r.returncode != 0:
            with open(logf, "rb") as f:
                tail = f.read()[-6000:].decode("utf-8", "replace")
            raise Failure("building %s failed:\n%s" % (app, tail))
        log("built %s in %.0f s" % (app, time.time() - t))
        return out

    def _cargo_bin(self, package, binary):
        """Builds a host binary of the Cargo workspace into the build root; returns its path."""
        target = os.path.join(self.build_root, "server-target")
        log("building %s" % binary)
        # A host build: without the firmware's -Z build-std settings.
        env = {k: v for k, v in os.environ.items()
               if k not in ("CARGO_UNSTABLE_BUILD_STD", "RUSTC_BOOTSTRAP")}
        r = subprocess.run(["cargo", "build", "--release", "-q", "-p", package,
                            "--bin", binary, "--target-dir", target],
                           cwd=ROOT, env=env, timeout=BUILD_TIMEOUT)
        if r.returncode != 0:
            raise Failure("building %s failed" % binary)
        return os.path.join(target, "release", binary)

    def build_server(self):
        self.server_bin = self._cargo_bin("ivshmem", "ivshmem-server")

    def build_native(self):
        """The native peer (tools/rpmsg-ivshmem), for the native <-> C image pairs."""
        self.native_bin = self._cargo_bin("rpmsg-ivshmem", "rpmsg-ivshmem")

    def start_server(self):
        log("ivshmem-server -F -S %s -M %s -l 4M -n 2" % (self.socket, self.shm))
        self.server_log = open(os.path.join(self.work, "server.log"), "ab")
        self.server = subprocess.Popen(
            [self.server_bin, "-F", "-v", "-S", self.socket, "-M", self.shm, "-l", "4M", "-n", "2"],
            stdout=self.server_log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.exists(self.socket):
                return
            if self.server.poll() is not None:
                break
            time.sleep(0.05)
        raise Failure("ivshmem-server did not start (see %s)" % self.server_log.name)

    def stop_server(self):
        if self.server is not None:
            terminate(self.server)
            self.server = None

    def fresh_server(self, tag):
        """Stops every guest, native peer and the server, and starts a server on a new
        socket and shared-memory name: the C sample's nodes expect a region nobody used."""
        for g in list(self.guests):
            self.stop(g)
        for n in list(self.natives):
            self.stop_native(n)
        self.stop_server()
        self.socket = os.path.join(self.work, "ivshmem-%s.sock" % tag)
        self.shm = "rpmsg-e2e-%d-%s" % (os.getpid(), tag)
        self.start_server()

    def boot_elf(self, name, elf):
        """Boots a prebuilt image (a C sample image) with the board's QEMU command line.
        The C sample prints no boot banner before its backend is up: wait for its first
        line."""
        g = Guest(name, None, self.socket, self.work,
                  cmd=qemu_cmd(elf, self.socket, self.icount))
        self.guests.append(g)
        g.expect(r"\*\*\* Booting Zephyr OS|shmem mapped at", BOOT_TIMEOUT, "first console line")
        g.pos = g.start
        return g

    def start_native(self, name, args):
        """Starts the native peer on the current server; stdout and stderr go to files,
        commands to its stdin (a pipe)."""
        out = os.path.join(self.work, name + ".stdout")
        err = os.path.join(self.work, name + ".stderr")
        proc = subprocess.Popen([self.native_bin, "-S", self.socket] + args,
                                stdin=subprocess.PIPE, stdout=open(out, "wb"),
                                stderr=open(err, "wb"), start_new_session=True)
        proc.out_path, proc.err_path = out, err
        self.natives.append(proc)
        return proc

    def stop_native(self, proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self.natives.remove(proc)

    def boot(self, name, build_dir, echo=None):
        g = Guest(name, build_dir, self.socket, self.work, echo)
        self.guests.append(g)
        # Zephyr's run target prints this line right before it starts QEMU: the
        # console proper starts after it (before it: the build's output).
        g.expect(r"\[QEMU\] CPU: \S+\r*\n", BOOT_TIMEOUT, "QEMU start")
        g.start = g.pos
        g.expect(re.escape("*** Booting Zephyr OS"), BOOT_TIMEOUT, "boot banner")
        # Later searches start from the console's start (the banner comes after the
        # boot log, see `console_problems`, but a search need not depend on it).
        g.pos = g.start
        return g

    def stop(self, g):
        g.kill()
        if g in self.guests:
            self.guests.remove(g)

    def cleanup(self, keep_logs):
        for g in list(self.guests):
            try:
                g.kill()
            except Exception:  # best effort
                pass
        self.guests = []
        for n in list(self.natives):
            self.stop_native(n)
        self.stop_server()
        if keep_logs:
            log("consoles and server log kept in %s" % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def echo_block(text, i):
    return ["Remote side echoed the string back:", "[ %s ]" % text, "at message number %d" % i, ""]


def remote_block(text):
    return ["Host side sent a string:", "[ %s ]" % text, "Now echoing it back!", ""]


def run_command(g, line, expect, timeout, what):
    """Types `line` and waits for `expect` (a regex); returns the console mark from
    before the command (at its prompt)."""
    m = g.mark_prompt()
    g.type(line)
    g.expect(expect, timeout, what)
    # Let the rest of the output (and the prompt) arrive.
    g.pump(0.5)
    return m


def check(cond, msg):
    if not cond:
        raise Failure(msg)
    log("ok: " + msg)


def status_value(lines, key):
    for line in reversed(lines):
        if line.startswith(key + ": "):
            return line[len(key) + 2:]
    return None


# A whole log line: `[hh:mm:ss.mmm,uuu] <lvl> module: text`.
LOG_LINE = re.compile(r"\[\d\d:\d\d:\d\d\.\d{3},\d{3}\] <(?:inf|wrn|err|dbg)> [A-Za-z0-9_]+: .*")
# A piece of a log line (its timestamp or level tag) anywhere in a line.
LOG_PIECE = re.compile(r"\[\d\d:\d\d:\d\d\.\d|<(?:inf|wrn|err|dbg)> ")
# The log lines of one boot that the banner explains (drivers' and ours before the link).
BOOT_LOG = re.compile(r"\S+ <inf> (?:pcie_core|ivshmem): ")
LINK_UP = {"Host": "host: link up with the remote", "Remote": "remote: attached to the host"}
REMOTE_TEXT = ("Host side sent a string:", "Now echoing it back!", "")


CURSOR_LEFT = re.compile(rb"\x1b\[(\d*)D")
ERASE_TO_END = b"\x1b[J"


def screen_lines(raw):
    """Console bytes -> the lines a terminal shows: like `normalize`, but the shell's
    "cursor left n, erase to the end" (how it clears its command line before text from
    another context and redraws it after) removes what it covers, so a command line
    erased for a log line does not look like text glued to that log line."""
    out = bytearray()
    i = 0
    while i < len(raw):
        m = CURSOR_LEFT.match(raw, i)
        if m and raw.startswith(ERASE_TO_END, m.end()):
            n = int(m.group(1) or b"1")
            line_start = out.rfind(b"\n") + 1
            del out[max(line_start, len(out) - n):]
            i = m.end() + len(ERASE_TO_END)
            continue
        out.append(raw[i])
        i += 1
    return normalize(bytes(out))


# The keys of the remote's `rpmsg_ivshmem status` answer, in order.
REMOTE_STATUS_KEYS = ("role", "own id", "peer id", "link", "session", "endpoint",
                      "bench endpoint", "tx messages", "rx messages", "notifications",
                      "dropped", "resets", "errors", "peer faults", "echoed messages")


def remote_text_ok(line):
    """The remote's own console text: the banner, the echo blocks, and a typed
    `rpmsg_ivshmem status` with its answer."""
    return (line in REMOTE_TEXT or line == BANNER % (BOARD, "Remote")
            or (line.startswith("[ ") and line.endswith(" ]"))
            or line == PROMPT + "rpmsg_ivshmem status"
            or line.split(": ", 1)[0] in REMOTE_STATUS_KEYS)


# First line of an echo block -> its other lines: no prompt may come inside a block.
BLOCK_STARTS = {"Host side sent a string:": 3, "Remote side echoed the string back:": 3}


def prompt_problems(raw):
    """Where the shell's prompt `uart:~$ ` is not allowed in console bytes `raw`: inside
    a line, or inside an echo block. Allowed: at the start of a line outside blocks (a
    redraw after text from another thread, which the shell erases before the next text:
    the sample README's `uart:~$ Host side sent a string:`, or a typed command). Checked
    on the bytes as sent, without applying the shell's erasing."""
    text = ANSI.sub(b"", raw).replace(b"\r", b"").decode("utf-8", "replace")
    problems = []
    block_left = 0
    for i, line in enumerate(text.split("\n")):
        rest = line
        while rest.startswith(PROMPT):
            rest = rest[len(PROMPT):]
        where = "raw line %d %r" % (i + 1, line[:100])
        if PROMPT.strip() in rest:
            problems.append("%s: a prompt inside a line" % where)
        if block_left > 0 and rest != line:
            problems.append("%s: a prompt inside an echo block" % where)
        block_left = BLOCK_STARTS.get(rest, max(block_left - 1, 0))
    return problems


def console_problems(lines, side, text_ok=None):
    """What is wrong in our image's console `lines` (from QEMU's start): a log line cut or
    cutting text, text that `text_ok` does not accept, boot log lines after the banner of
    their boot, or a banner not right after its link-up log line. Empty if all is well."""
    problems = []
    banner = BANNER % (BOARD, side)
    boot_log_seen = banner_seen = False
    for i, line in enumerate(lines):
        where = "line %d %r" % (i + 1, line[:100])
        if line.startswith("*** Booting Zephyr OS"):
            continue
        if LOG_LINE.fullmatch(line):
            if LOG_PIECE.search(line, line.index("> ") + 2):
                problems.append("%s: two log lines in one" % where)
            if LEAN and "<inf> rpmsg: " in line:
                problems.append("%s: an info line of ours in the lean image" % where)
            if BOOT_LOG.match(line):
                if banner_seen:
                    problems.append("%s: boot log after the banner" % where)
                boot_log_seen = True
        elif LOG_PIECE.search(line) or line.startswith("[00:"):
            problems.append("%s: a log line cut by or cutting text" % where)
        elif line == banner:
            banner_seen = True
            prev = lines[i - 1] if i > 0 else ""
            # Lean: our info lines are compiled out (log level ERR), the link-up line too.
            if not LEAN and not (LOG_LINE.fullmatch(prev) and "<inf> rpmsg: " + LINK_UP[side] in prev):
                problems.append("%s: the banner does not follow its link-up log line" % where)
            if not boot_log_seen:
                problems.append("%s: no boot log line before the banner" % where)
        elif text_ok is not None and not text_ok(line):
            problems.append("%s: unexpected text" % where)
    return problems


def console_clean(g, side, text_ok=None):
    """Every line of our image's console `g` passes `console_problems`, and its prompts
    `prompt_problems`."""
    with g.cond:
        raw = bytes(g.raw[g.start:])
    lines = screen_lines(raw)
    problems = console_problems(lines, side, text_ok) + prompt_problems(raw)
    check(not problems, "%s console: every line whole and in order (%d lines)%s"
          % (g.name, len(lines), "".join("\n  " + p for p in problems[:10])))


def scenario_main(rig, host_dir, remote_dir):
    """Remote first, then host: the issue's console text, argument checks, timeout."""
    log("--- remote first, then host")
    remote = rig.boot("remote", remote_dir)
    host = rig.boot("host", host_dir)
    host.expect(re.escape(BANNER % (BOARD, "Host")), LINK_TIMEOUT, "host banner")
    remote.expect(re.escape(BANNER % (BOARD, "Remote")), 10, "remote banner")
    check(BANNER % (BOARD, "Host") in host.lines(), "host banner")
    check(BANNER % (BOARD, "Remote") in remote.lines(), "remote banner")

    # Wrong argument count: Zephyr's own text.
    m = run_command(host, "rpmsg_ivshmem send", re.escape("send - Usage:"), 10, "usage text")
    check(find_block(host.lines(m), USAGE) >= 0, "wrong parameter count prints the usage")

    before = remote.mark()
    for bad in ["abc", "-1", "0", "1e3"]:
        m = run_command(host, 'rpmsg_ivshmem send "RPMsg over IVSHMEM" %s' % bad,
                        re.escape("send: invalid number of messages"), 10, "count error")
        want = ('send: invalid number of messages "%s": expected a whole number '
                'from 1 to 18446744073709551615' % bad)
        check(want in host.lines(m), "count %s refused: %s" % (bad, want))
    long_text = "x" * 600
    m = run_command(host, "rpmsg_ivshmem send %s 1" % long_text,
                    re.escape("send: string too long"), 20, "too-long error")
    want = ("send: string too long: 600 bytes, but at most 495 fit in one message "
            "(496-byte payload, including the terminating NUL); nothing was sent")
    check(want in host.lines(m), "a 600-byte string is refused")
    remote.pump(1.0)
    check("Host side sent a string:" not in remote.lines(before),
          "nothing was sent for the refused commands")

    # The exchange: 10 messages; the remote's status before and after.
    before = remote_status(remote)
    text = "RPMsg over IVSHMEM"
    hm, rm = host.mark(), remote.mark()
    t = time.time()
    run_command(host, 'rpmsg_ivshmem send "%s" 10' % text,
                re.escape("at message number 10") + r"\r*\n", 60, "10th echo")
    elapsed = time.time() - t
    remote.pump(0.5)
    expected = []
    for i in range(1, 11):
        expected += echo_block(text, i)
    hl = host.lines(hm)
    check(find_block(hl, expected) >= 0,
          "host printed the 10 echo blocks exactly, in order (%.1f s)" % elapsed)
    check(TIMED_OUT not in hl, "no timeout during the 10 messages")
    rl = remote.lines(rm)
    check(count_block(rl, remote_block(text)) == 10, "remote printed 10 exact blocks")
    check(find_block(rl, remote_block(text) * 10) >= 0, "remote blocks are contiguous")
    after = remote_status(remote)
    check([k for k, _ in after] == list(REMOTE_STATUS_KEYS),
          "remote status: the fields %s" % ", ".join(REMOTE_STATUS_KEYS))
    a, b = dict(after), dict(before)
    check(a["role"] == "remote" and a["link"] == "up" and a["session"] == "1",
          "remote status: role remote, link up, session 1")
    check(a["own id"].isdigit() and a["peer id"].isdigit(),
          "remote status: own id %s, peer id %s" % (a["own id"], a["peer id"]))
    check(a["endpoint"] == "k 1024 -> 1024", "remote status: endpoint k bound to the host's 1024")
    moved = {k: int(a[k]) - int(b[k]) for k in ("rx messages", "tx messages", "echoed messages")}
    check(moved == {"rx messages": 10, "tx messages": 10, "echoed messages": 10},
          "remote status: counters moved by the 10 messages %s" % moved)
    check(a["errors"] == "0" and a["peer faults"] == "0", "remote status: no errors")

    # A string with spaces at the maximum length goes through.
    max_text = ("y" * 494) + "z"
    hm, rm = host.mark(), remote.mark()
    run_command(host, "rpmsg_ivshmem send %s 1" % max_text,
                re.escape("at message number 1") + r"\r*\n", 20, "echo of a 495-byte string")
    remote.pump(0.3)
    check(find_block(host.lines(hm), echo_block(max_text, 1)) >= 0, "a 495-byte string is echoed")
    check(find_block(remote.lines(rm), remote_block(max_text)) >= 0, "the remote printed it")

    # status
    m = run_command(host, "rpmsg_ivshmem status", r"stray messages: \d+", 10, "status")
    sl = host.lines(m)
    check((status_value(sl, "own id"), status_value(sl, "peer id")) == (a["peer id"], a["own id"]),
          "status: the host's ids are the remote's, swapped")
    check(status_value(sl, "link") == "up", "status: link up")
    check(status_value(sl, "peer id") not in (None, "none"), "status: peer id %s" % status_value(sl, "peer id"))
    check(status_value(sl, "endpoint") == "k 1024 -> 1024", "status: endpoint k bound")
    if LEAN:
        check(status_value(sl, "bench endpoint") == "none", "status: no bench endpoint (lean)")
    else:
        check(status_value(sl, "bench endpoint") == "bench 1025 -> 1025", "status: endpoint bench bound")
    check(status_value(sl, "tx messages") == "11", "status: 11 messages sent (none for the refused commands)")
    announced = 1 if LEAN else 2
    check(status_value(sl, "rx messages") == str(11 + announced),
          "status: %d received (11 echoes + %d announcements)" % (11 + announced, announced))
    check(status_value(sl, "errors") == "0", "status: no errors")

    if LEAN:
        bench_absent(host)
    else:
        bench_smoke(host, remote)
    console_clean(remote, "Remote", remote_text_ok)

    # Kill the remote: the next send times out (and a 14-digit count is accepted).
    log("killing the remote QEMU")
    rig.stop(remote)
    m = host.mark()
    t = time.time()
    run_command(host, 'rpmsg_ivshmem send "RPMsg over IVSHMEM" 10000000000000',
                re.escape(TIMED_OUT), 15, "timeout line")
    elapsed = time.time() - t
    hl = host.lines(m)
    check(TIMED_OUT in hl and "Remote side echoed the string back:" not in hl,
          "remote gone: '%s' after %.1f s" % (TIMED_OUT, elapsed))
    # A remote of ours beats: once its heartbeat stopped (at most 2 s) the host starts a
    # fresh session, and the running send, whose echoes cannot come, answers at once.
    check(elapsed <= 4, "the send ended when the host noticed the silent remote (< 4 s, not 5)")
    host.pump(0.5)
    console_clean(host, "Host")
    return host, remote


def bench_absent(host):
    """The lean image has no `bench`: the shell does not know the subcommand (it prints
    the group's help, which lists no bench), and nothing is measured."""
    m = run_command(host, "rpmsg_ivshmem bench 16 50",
                    r"Subcommands:|command not found|Please specify", 10, "bench refused")
    hl = host.lines(m)
    check(not [l for l in hl if l.startswith("bench") or l.lstrip().startswith("bench ")],
          "lean: no bench command (%s)" % " / ".join(l for l in hl if l)[:160])


def bench_smoke(host, remote):
    """bench: a short smoke run (the benchmark proper is tests/e2e/bench), its argument
    checks, and nothing printed on the remote for bench traffic."""
    rm = remote.mark()
    m = run_command(host, "rpmsg_ivshmem bench 16 50", BENCH_STREAM, 60, "bench results")
    hl = host.lines(m)
    rt = [l for l in hl if re.fullmatch(BENCH_RT, l)]
    st = [l for l in hl if re.fullmatch(BENCH_STREAM, l)]
    check(len(rt) == 1 and rt[0].startswith("bench: 50 round trips of 16 bytes: "),
          "bench 16 50: %s" % (rt[0] if rt else hl))
    check(len(st) == 1 and st[0].startswith("bench: 50 messages of 16 bytes streamed, 8 in flight: "),
          "bench 16 50: %s" % (st[0] if st else hl))
    check(not [l for l in hl if l.startswith("bench:") and l not in rt + st], "bench: no other output")
    remote.pump(0.3)
    check("Host side sent a string:" not in remote.lines(rm), "bench: the remote printed nothing")
    for args, want in [
            ("497", 'bench: invalid payload size "497": expected a whole number from 0 to 496'),
            ("16 0", 'bench: invalid number of round trips "0": expected a whole number from 1 to 2000'),
            ("x 5", 'bench: invalid payload size "x": expected a whole number from 0 to 496')]:
        m = run_command(host, "rpmsg_ivshmem bench %s" % args, re.escape("bench: invalid"), 10,
                        "bench argument error")
        check(want in host.lines(m), "bench %s refused: %s" % (args, want))
    m = run_command(host, "rpmsg_ivshmem bench 1 2 3", re.escape("bench - Usage:"), 10, "usage text")
    check("bench: wrong parameter count" in host.lines(m), "bench with 3 arguments prints the usage")
    check_doorbell(host, remote)


def check_doorbell(host, remote):
    """`rpmsg_ivshmem doorbell`: a short bare doorbell ping-pong (no RPMsg: the remote
    prints nothing), and its argument check."""
    rm = remote.mark()
    m = run_command(host, "rpmsg_ivshmem doorbell 50", DOORBELL_RT + "|doorbell: no", 30,
                    "doorbell result")
    dl = [l for l in host.lines(m) if l.startswith("doorbell:")]
    check(len(dl) == 1 and re.fullmatch(DOORBELL_RT, dl[0]) is not None
          and dl[0].startswith("doorbell: 50 bare round trips on vector 1, no RPMsg: "),
          "doorbell 50: %s" % dl)
    remote.pump(0.3)
    check("Host side sent a string:" not in remote.lines(rm), "doorbell: the remote printed nothing")
    want = 'doorbell: invalid number of round trips "0": expected a whole number from 1 to 2000'
    m = run_command(host, "rpmsg_ivshmem doorbell 0", re.escape("doorbell: invalid"), 10,
                    "doorbell argument error")
    check(want in host.lines(m), "doorbell 0 refused: %s" % want)


def remote_status(remote):
    """Types `rpmsg_ivshmem status` on our remote; returns its answer as (key, value)
    pairs, in order."""
    m = run_command(remote, "rpmsg_ivshmem status", r"echoed messages: \d+", 10, "remote status")
    lines = remote.lines(m)
    i = find_block(lines, [PROMPT + "rpmsg_ivshmem status"])
    check(i >= 0, "the remote answers rpmsg_ivshmem status")
    pairs = [tuple(l.split(": ", 1)) for l in lines[i + 1:] if ": " in l]
    return [p for p in pairs if p[0] in REMOTE_STATUS_KEYS]


def exchange_ok(host, remote, text, count, what):
    """`send "<text>" <count>` gives `count` exact blocks on both consoles."""
    hm, rm = host.mark_prompt(), remote.mark()
    run_command(host, 'rpmsg_ivshmem send "%s" %d' % (text, count),
                re.escape("at message number %d" % count) + r"\r*\n", 10 + 6 * count,
                "echo number %d" % count)
    remote.pump(0.3)
    expected = []
    for i in range(1, count + 1):
        expected += echo_block(text, i)
    check(find_block(host.lines(hm), expected) >= 0, "%s: %d echo blocks on the host" % (what, count))
    check(count_block(remote.lines(rm), remote_block(text)) == count,
          "%s: %d blocks on the remote" % (what, count))


def scenario_remote_restart(rig, host, remote_dir):
    """The remote comes back (a new QEMU, a new ivshmem id): the running host binds it
    again by itself and the next send works."""
    log("--- the remote restarts, the host keeps running")
    m = host.mark()
    remote = rig.boot("remote-2", remote_dir)
    remote.expect(re.escape(BANNER % (BOARD, "Remote")), LINK_TIMEOUT, "remote banner")
    host.expect(re.escape(BANNER % (BOARD, "Host")), LINK_TIMEOUT, "host banner again")
    check(True, "both banners again after the remote restarted")
    exchange_ok(host, remote, "after a remote restart", 2, "remote restarted")
    m = run_command(host, "rpmsg_ivshmem status", r"stray messages: \d+", 10, "status")
    check(status_value(host.lines(m), "session") == "2", "status: session 2")
    console_clean(remote, "Remote", remote_text_ok)
    console_clean(host, "Host")
    return remote


def host_link(host):
    """`rpmsg_ivshmem status`: the values of its `link` and `liveness` lines, as soon as
    its last line is out (no pause after it: a caller polls with it)."""
    m = host.mark_prompt()
    host.type("rpmsg_ivshmem status")
    host.expect(r"stray messages: \d+\r*\n", 10, "status")
    sl = host.lines(m)
    return status_value(sl, "link"), status_value(sl, "liveness")


def scenario_killed_remote_noticed(rig, host, remote, remote_dir):
    """Liveness (issue 12): the remote's QEMU is killed while the link is idle; within 2 s
    the host's status no longer says `up` (the remote's heartbeat stopped), `send` answers
    "not ready" at once, and a rebooted remote is linked with and echoes."""
    log("--- the remote is killed: the host notices, a rebooted remote relinks")
    link, liveness = host_link(host)
    check(link == "up" and (liveness or "").startswith("heartbeat"),
          "status before: link %r, liveness %r" % (link, liveness))
    rig.stop(remote)
    killed = time.time()
    while link == "up" and time.time() - killed < 4:
        time.sleep(0.1)
        link, _ = host_link(host)
    noticed = time.time() - killed
    check(link != "up" and noticed <= 2.0,
          "remote killed: status says %r after %.1f s (at most 2 s)" % (link, noticed))
    t = time.time()
    m = run_command(host, 'rpmsg_ivshmem send "late" 1', re.escape(NOT_READY), 5, "not-ready text")
    answered = time.time() - t - 0.5  # run_command waits 0.5 s for the rest of the output
    check(NOT_READY in host.lines(m) and answered < 1.0,
          "send after the remote was noticed gone: not ready at once (%.1f s)" % answered)
    remote = rig.boot("remote-killed-then-rebooted", remote_dir)
    remote.expect(re.escape(BANNER % (BOARD, "Remote")), LINK_TIMEOUT, "remote banner")
    host.expect(re.escape(BANNER % (BOARD, "Host")), LINK_TIMEOUT, "host banner again")
    exchange_ok(host, remote, "after the remote was killed", 1, "rebooted remote")
    console_clean(remote, "Remote", remote_text_ok)
    console_clean(host, "Host")
    return remote


def scenario_host_first(rig, host_dir, remote_dir, old):
    """Host first (the shell works before the link is up), then the remote; then the
    host restarts under the running remote."""
    log("--- host first, then remote")
    for g in old:
        rig.stop(g)
    host = rig.boot("host-2", host_dir)
    host.expect(re.escape(PROMPT), 20, "shell prompt")
    m = run_command(host, 'rpmsg_ivshmem send "early" 1', re.escape(NOT_READY), 10,
                    "not-ready text")
    check(NOT_READY in host.lines(m), "send before the link is up: not ready")
    m = run_command(host, "rpmsg_ivshmem status", r"stray messages: \d+", 10, "status")
    check(status_value(host.lines(m), "link") == "waiting for a remote", "status: waiting for a remote")
    remote = rig.boot("remote-3", remote_dir)
    host.expect(re.escape(BANNER % (BOARD, "Host")), LINK_TIMEOUT, "host banner")
    remote.expect(re.escape(BANNER % (BOARD, "Remote")), 10, "remote banner")
    check(True, "both banners with the host started first")
    exchange_ok(host, remote, "second pair", 3, "host first")
    console_clean(host, "Host")

    log("--- the host restarts, the remote keeps running")
    rig.stop(host)
    remote.mark()
    host = rig.boot("host-3", host_dir)
    host.expect(re.escape(BANNER % (BOARD, "Host")), LINK_TIMEOUT, "host banner")
    remote.expect(re.escape(BANNER % (BOARD, "Remote")), 10, "remote banner again")
    check(True, "both banners again after the host restarted")
    exchange_ok(host, remote, "after a host restart", 2, "host restarted")
    console_clean(remote, "Remote", remote_text_ok)
    console_clean(host, "Host")


# ---- mixed pairs: the OpenAMP C sample's images (OPENAMP_HOST_ELF, OPENAMP_REMOTE_ELF) ----

C_USAGE = ["send: wrong parameter count", "send - Usage: rpmsg_ivshmem send <string>"]


def c_usage_ok(lines):
    """The C host's usage text: Zephyr's two lines. Its help string lacks the space the
    README shows ("<string><number of messages>"), so only the common start is compared."""
    i = find_block(lines, C_USAGE[:1])
    return i >= 0 and i + 1 < len(lines) and lines[i + 1].startswith(C_USAGE[1])


def timeout_after_kill(rig, host, peer, what):
    """Kills `peer`'s QEMU; the host's next send prints the timeout line after about 5 s."""
    log("killing %s" % what)
    rig.stop(peer)
    m = host.mark()
    t = time.time()
    run_command(host, 'rpmsg_ivshmem send "RPMsg over IVSHMEM" 10', re.escape(TIMED_OUT), 15,
                "timeout line")
    elapsed = time.time() - t
    hl = host.lines(m)
    check(TIMED_OUT in hl and "Remote side echoed the string back:" not in hl,
          "%s gone: '%s' after %.1f s" % (what, TIMED_OUT, elapsed))
    check(4.5 <= elapsed <= 9, "the timeout took about 5 s")


def boot_pair(rig, tag, boot_host, boot_remote, host_first, banners, what):
    """On a fresh server, boots the two guests (`boot_host`, `boot_remote`: functions), the
    host first or not, and checks both banners (`banners`: host's, remote's)."""
    log("--- mixed: %s" % what)
    rig.fresh_server(tag)
    if host_first:
        host, remote = boot_host(), boot_remote()
    else:
        remote, host = boot_remote(), boot_host()
    host.expect(re.escape(banners[0]), LINK_TIMEOUT, "host banner")
    remote.expect(re.escape(banners[1]), 10, "remote banner")
    check(banners[0] in host.lines() and banners[1] in remote.lines(),
          "%s: both banners" % what)
    return host, remote


def scenario_c_host(rig, c_host_elf, remote_dir, consoles):
    """The C host image with our remote image: the C sample's order (host first), with all
    the checks of our own pair the C host supports; then our remote first."""
    banners = (HOST_READY, BANNER % (BOARD, "Remote"))
    host, remote = boot_pair(rig, "c-host", partial(rig.boot_elf, "c-host", c_host_elf),
                             partial(rig.boot, "remote-with-c-host", remote_dir), True,
                             banners, "the C host image first, then our remote image")
    m = run_command(host, "rpmsg_ivshmem send", re.escape("send - Usage:"), 10, "usage text")
    check(c_usage_ok(host.lines(m)), "C host: wrong parameter count prints the usage")
    exchange_ok(host, remote, "RPMsg over IVSHMEM", 10, "C host + our remote")
    st = dict(remote_status(remote))
    check((st.get("link"), st.get("echoed messages"), st.get("errors")) == ("up", "10", "0"),
          "our remote's status with the C host: link up, 10 echoed, no errors")
    timeout_after_kill(rig, host, remote, "our remote image")
    if consoles:
        print_console("C host", host)
        print_console("our remote (killed at the end)", remote)
    host, remote = boot_pair(rig, "c-host-2", partial(rig.boot_elf, "c-host-2", c_host_elf),
                             partial(rig.boot, "remote-before-c-host", remote_dir), False,
                             banners, "our remote image first, then the C host image")
    exchange_ok(host, remote, "RPMsg over IVSHMEM", 10, "our remote first, C host")


def scenario_c_remote(rig, host_dir, c_remote_elf, consoles):
    """Our host image with the C remote image, host first; then the C remote first."""
    banners = (BANNER % (BOARD, "Host"), REMOTE_READY)
    host, remote = boot_pair(rig, "c-remote", partial(rig.boot, "host-with-c-remote", host_dir),
                             partial(rig.boot_elf, "c-remote", c_remote_elf), True,
                             banners, "our host image first, then the C remote image")
    m = run_command(host, "rpmsg_ivshmem send", re.escape("send - Usage:"), 10, "usage text")
    check(find_block(host.lines(m), USAGE) >= 0, "wrong parameter count prints the usage")
    exchange_ok(host, remote, "RPMsg over IVSHMEM", 10, "our host + C remote")
    if LEAN:
        bench_absent(host)
    else:
        m = run_command(host, "rpmsg_ivshmem bench", re.escape("bench: the remote"), 10, "bench refusal")
        want = 'bench: the remote has no "bench" endpoint (it echoes silently); nothing was sent'
        check(want in host.lines(m), "bench against the C remote: %s" % want)
    m = run_command(host, "rpmsg_ivshmem status", r"stray messages: \d+", 10, "status")
    sl = host.lines(m)
    check(status_value(sl, "link") == "up" and status_value(sl, "errors") == "0",
          "status: link up, no errors")
    check((status_value(sl, "liveness") or "").startswith("not watched"),
          "status: liveness %r (a C remote has no heartbeat)" % status_value(sl, "liveness"))
    timeout_after_kill(rig, host, remote, "the C remote image")
    if consoles:
        print_console("our host", host)
        print_console("C remote (killed at the end)", remote)
    host, remote = boot_pair(rig, "c-remote-2", partial(rig.boot, "host-after-c-remote", host_dir),
                             partial(rig.boot_elf, "c-remote-2", c_remote_elf), False, banners,
                             "the C remote image first, then our host image")
    exchange_ok(host, remote, "RPMsg over IVSHMEM", 10, "C remote first, our host")


def wait_file(path, text, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        with open(path, "rb") as f:
            if text.encode() in f.read():
                return
        time.sleep(0.1)
    raise Failure("no %s within %d s (%s)" % (what, timeout, path))


def file_lines(path):
    with open(path, "rb") as f:
        return normalize(f.read())


def scenario_native_c(rig, c_host_elf, c_remote_elf):
    """The native peer (rpmsg-ivshmem) with each C image, in the C sample's order."""
    text = "RPMsg over IVSHMEM"
    expected = []
    for i in range(1, 11):
        expected += echo_block(text, i)
    if c_remote_elf:
        log("--- mixed: the native host (rpmsg-ivshmem host) first, then the C remote image")
        rig.fresh_server("native-host")
        native = rig.start_native("native-host", ["--board", BOARD, "host"])
        time.sleep(0.5)
        remote = rig.boot_elf("c-remote-native", c_remote_elf)
        # The C remote prints its banner after it announced "k", from another thread than
        # its echoes: send only then, so that its console has whole blocks.
        remote.expect(re.escape(REMOTE_READY), LINK_TIMEOUT, "C remote banner")
        wait_file(native.out_path, BANNER % (BOARD, "Host"), 10, "native host banner")
        native.stdin.write(('rpmsg_ivshmem send "%s" 10\n' % text).encode())
        native.stdin.flush()
        wait_file(native.out_path, "at message number 10\n", 70, "echo number 10")
        remote.pump(0.5)
        check(find_block(file_lines(native.out_path), expected) >= 0,
              "native host: exactly the 10 echo blocks")
        check(count_block(remote.lines(), remote_block(text)) == 10, "C remote: 10 blocks")
    if c_host_elf:
        log("--- mixed: the C host image first, then the native remote (rpmsg-ivshmem remote)")
        rig.fresh_server("native-remote")
        host = rig.boot_elf("c-host-native", c_host_elf)
        native = rig.start_native("native-remote", ["--board", BOARD, "remote"])
        host.expect(re.escape(HOST_READY), LINK_TIMEOUT, "C host banner")
        wait_file(native.out_path, BANNER % (BOARD, "Remote"), 10, "native remote banner")
        m = host.mark_prompt()
        run_command(host, 'rpmsg_ivshmem send "%s" 10' % text,
                    re.escape("at message number 10") + r"\r*\n", 70, "echo number 10")
        time.sleep(0.3)
        check(find_block(host.lines(m), expected) >= 0, "C host: 10 echo blocks")
        check(count_block(file_lines(native.out_path), remote_block(text)) == 10,
              "native remote: 10 blocks")


def c_images():
    """The C images named by the environment: (host, remote, reason to skip what is
    missing or None). A name that is set but is no file is an error."""
    found = {}
    missing = []
    for var in ("OPENAMP_HOST_ELF", "OPENAMP_REMOTE_ELF"):
        path = os.environ.get(var, "")
        if not path:
            missing.append(var)
            continue
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise Failure("%s=%s: no such file" % (var, path))
        found[var] = path
    reason = None
    if missing:
        reason = "%s not set (the OpenAMP dual_qemu_ivshmem sample's zephyr.elf; see README)" % (
            " and ".join(missing))
    return found.get("OPENAMP_HOST_ELF"), found.get("OPENAMP_REMOTE_ELF"), reason


def print_console(title, g):
    print("---------------- %s console ----------------" % title)
    for line in g.lines():
        print(line)


def cmd_test(args):
    global LEAN
    LEAN = args.lean
    cmake = args.cmake
    if LEAN:
        cmake = (cmake + " -DEXTRA_CONF_FILE=%s" % LEAN_CONF).strip()
        log("lean configuration: %s" % LEAN_CONF)
    rig = Rig(args.build_root, cmake)
    ok = False
    skipped = None
    try:
        c_host, c_remote, skipped = c_images()
        rig.build_server()
        host_dir = rig.build("host")
        remote_dir = rig.build("remote")
        rig.icount = icount_flags(host_dir)
        if not args.only_mixed:
            rig.start_server()
            host, remote = scenario_main(rig, host_dir, remote_dir)
            if args.consoles:
                # The consoles of the main scenario, for the record.
                print_console("host", host)
                print_console("remote (killed at the end)", remote)
            if not args.quick:
                remote2 = scenario_remote_restart(rig, host, remote_dir)
                remote3 = scenario_killed_remote_noticed(rig, host, remote2, remote_dir)
                scenario_host_first(rig, host_dir, remote_dir, [host, remote3])
        if c_host or c_remote:
            rig.build_native()
            if c_host:
                scenario_c_host(rig, c_host, remote_dir, args.consoles)
            if c_remote:
                scenario_c_remote(rig, host_dir, c_remote, args.consoles)
            scenario_native_c(rig, c_host, c_remote)
        ok = True
    except Failure as e:
        log("FAILED: %s" % e)
        for g in rig.guests:
            print("---------------- %s console (last 60 lines) ----------------" % g.name)
            for line in g.lines()[-60:]:
                print(line)
    finally:
        rig.cleanup(keep_logs=not ok or args.keep)
    if skipped:
        print("SKIPPED mixed C pairs: %s" % skipped, flush=True)
    log("PASSED" if ok else "FAILED")
    return 0 if ok else 1


def cmd_demo(args):
    rig = Rig(args.build_root, args.cmake)
    status = 1
    try:
        rig.build_server()
        host_dir = rig.build("host")
        remote_dir = rig.build("remote")
        rig.start_server()
        log("booting the remote, then the host" + (" (consoles kept in %s)" % rig.work if args.keep else ""))
        remote = rig.boot("remote", remote_dir)
        host = rig.boot("host", host_dir)
        host.expect(re.escape(BANNER % (BOARD, "Host")), LINK_TIMEOUT, "host banner")
        remote.expect(re.escape(BANNER % (BOARD, "Remote")), 10, "remote banner")
        # The boot and link-up log lines come before the banner; let the prompt redraw.
        host.pump(0.3)
        print("---------------- host console (live) ----------------", flush=True)
        with host.cond:
            # Print what came so far, then let the reader thread echo the rest.
            raw = bytes(host.raw[host.start:])
            for line in normalize(raw):
                print(line)
            if ANSI.sub(b"", raw).rstrip().endswith(PROMPT.strip().encode()):
                sys.stdout.write(PROMPT)  # the typed command follows it
            sys.stdout.flush()
            host.echo = sys.stdout
        m = host.mark()
        # Zephyr's shell: inside double quotes only \" needs escaping.
        line = "rpmsg_ivshmem send \"%s\" %s" % (args.string.replace('"', '\\"'), args.count)
        host.type(line)
        # Done when the prompt comes back after the command's output.
        end_re = "|".join(re.escape(s) for s in [
            TIMED_OUT, NOT_READY, "send: invalid number", "send: string too long"])
        try:
            count = int(args.count)
        except ValueError:
            count = 0
        last = re.escape("at message number %d" % count) + r"\r*\n" if count > 0 else None
        pattern = end_re if last is None else "(%s)|(%s)" % (end_re, last)
        host.expect(pattern, max(30, 6 * max(count, 1)) if count < 10**6 else None, "end of the send command")
        host.pump(0.5)
        remote.pump(0.5)
        host.echo = None
        print()
        # The remote's shell: what it says about the link and its counters.
        run_command(remote, "rpmsg_ivshmem status", r"echoed messages: \d+", 10, "remote status")
        print_console("remote", remote)
        hl = host.lines(m)
        status = 0 if count > 0 and ("at message number %d" % count) in hl else 1
    except Failure as e:
        log("FAILED: %s" % e)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        rig.cleanup(keep_logs=args.keep)
    return status


def _terminate(signum, _frame):
    # Unwind through the `finally` blocks, which stop the guests and the server.
    raise SystemExit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-root", default=os.environ.get("RPMSG_E2E_BUILD"),
                   help="where the images and the server are built (outside the repo)")
    p.add_argument("--cmake", default=os.environ.get("FW_CMAKE_ARGS", ""),
                   help="extra CMake arguments for both images")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("test")
    t.add_argument("--quick", action="store_true",
                   help="only the remote-first scenario (no restarts, no host-first order)")
    t.add_argument("--keep", action="store_true", help="keep the consoles")
    t.add_argument("--consoles", action="store_true",
                   help="print the consoles of the main scenario and of the mixed pairs")
    t.add_argument("--lean", action="store_true",
                   help="build and test the lean configuration (lean.conf: no bench, log level ERR)")
    t.add_argument("--only-mixed", action="store_true",
                   help="only the pairs with the C sample's images (OPENAMP_HOST_ELF, OPENAMP_REMOTE_ELF)")
    d = sub.add_parser("demo")
    d.add_argument("--keep", action="store_true", help="keep the consoles and the server log")
    d.add_argument("string")
    d.add_argument("count")
    args = p.parse_args()
    if not args.build_root:
        p.error("--build-root (or RPMSG_E2E_BUILD) is required")
    if os.path.realpath(args.build_root).startswith(os.path.realpath(ROOT) + os.sep):
        p.error("the build root must be outside the repository")
    os.makedirs(args.build_root, exist_ok=True)
    return cmd_test(args) if args.cmd == "test" else cmd_demo(args)


if __name__ == "__main__":
    sys.exit(main())
