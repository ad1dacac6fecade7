#!/usr/bin/env python3
"""Hostile-input and fault harness for the release tools (`seaclr`, `seaclr-buoy`).

Generates cases per area on the committed model (models/seaclr-s.seaclr) and
the data in ../shared/data (read, never copied into the repository; the
generated inputs go to a temporary folder), runs each with a timeout and
classifies the outcome:

  correct  the right result (e.g. good images counted, the bad one skipped
           and reported; a valid input accepted)
  clear    a clear error: non-zero exit (not 101) and a message naming the
           file or the problem, nothing stored lost
  panic    exit 101 or "panicked at" on stderr, or a crash (abort, fatal signal)
  hang     the case ran past its timeout
  lost     data lost: labels acknowledged before a power cut missing after
           the reboot, labels gone after a damaged image was used, or the
           installed model replaced by a bad one
  wrong    anything else (a bad input accepted, a wrong count, an error
           that names nothing)

Usage (from the project root, after
`cargo build --release -p seaclr-trainer -p seaclr-firmware-sim`):

  python3 bench/reliability/run.py [--out bench/reliability/results.md]
      [--bin DIR] [--data ../shared/data] [--jobs 2] [--only SUBSTRING]
      [--keep] [--verbose]

`--only images/fifo` reruns the cases whose id contains that text, and
`--verbose` prints each case's commands, exit codes and output tails (the
reproduction; with `--keep` the generated inputs stay on disk).
Exit status: 1 if any case panicked, hung or lost data, else 0.
"""

import argparse
import concurrent.futures as cf
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTCOMES = ["correct", "clear", "panic", "hang", "lost", "wrong"]
AREAS = [
    "model blobs",
    "images",
    "IFCB bins",
    "flash images",
    "power cuts",
    "console",
    "telemetry",
    "training configs",
]

ARGS = None
BIN = {}
DATA = None
MODEL = None


# ---------------------------------------------------------------- running


class Res:
    def __init__(self, argv, rc, out, err, timed_out, secs):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.timed_out, self.secs = timed_out, secs

    @property
    def text(self):
        return self.out + "\n" + self.err

    def panicked(self):
        # A panic, or a crash: an abort (e.g. "memory allocation of N bytes
        # failed") or a fatal signal other than the harness's own SIGKILL.
        return (self.rc == 101 or "panicked at" in self.err or "memory allocation of" in self.err
                or (not self.timed_out and self.rc is not None and (self.rc < 0 or self.rc in (134, 136, 139))))


def run_open_stdin(argv, cwd, stdin, timeout):
    """Like `run`, but stdin stays open (after `stdin` is written) until the process ends."""
    t0 = time.time()
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    bufs = {"out": [], "err": []}

    def pump(f, key):
        bufs[key].append(f.read())

    def feed():
        try:
            p.stdin.write(stdin)
            p.stdin.flush()
        except OSError:
            pass

    ts = [threading.Thread(target=pump, args=(p.stdout, "out"), daemon=True),
          threading.Thread(target=pump, args=(p.stderr, "err"), daemon=True),
          threading.Thread(target=feed, daemon=True)]
    for t in ts:
        t.start()
    timed_out = False
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    for t in ts[:2]:
        t.join(5)
    try:
        p.stdin.close()
    except OSError:
        pass
    dec = lambda b: b"".join(b).decode("utf-8", "replace")
    return Res(argv, p.returncode, dec(bufs["out"]), dec(bufs["err"]), timed_out, time.time() - t0)


def run(argv, cwd, stdin=None, timeout=30):
    """Runs one command in its own process group; a timeout kills the group."""
    t0 = time.time()
    p = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = p.communicate(input=stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
    dec = lambda b: b.decode("utf-8", "replace")
    return Res(argv, p.returncode, dec(out), dec(err), timed_out, time.time() - t0)


class Case:
    def __init__(self, area, cid, fn, timeout=30):
        self.area, self.id, self.fn, self.timeout = area, cid, fn, timeout
        self.outcome, self.note, self.log = None, "", []

    def sh(self, argv, cwd, stdin=None, timeout=None, keep_stdin_open=False):
        if keep_stdin_open:
            r = run_open_stdin(argv, cwd, stdin, timeout or self.timeout)
        else:
            r = run(argv, cwd, stdin, timeout or self.timeout)
        self.log.append(r)
        if r.timed_out:
            raise Outcome("hang", "timeout after %ds: %s" % (timeout or self.timeout, short(argv)))
        if r.panicked():
            raise Outcome("panic", "exit %s: %s" % (r.rc, first_panic(r.err)))
        return r


class Outcome(Exception):
    def __init__(self, kind, note=""):
        super().__init__(note)
        self.kind, self.note = kind, note


def first_panic(err):
    for line in err.splitlines():
        if "panicked at" in line or "memory allocation of" in line:
            return line.strip()[:200]
    return err.strip()[-200:]


def short(argv):
    out = []
    for a in argv:
        a = str(a)
        for k, v in BIN.items():
            if a == v:
                a = k
        out.append(a if len(a) < 120 else a[:117] + "...")
    return " ".join(out)


def clear_or_wrong(r, pattern, what=""):
    """Non-zero exit with a message matching `pattern` = clear error."""
    if r.rc == 0:
        raise Outcome("wrong", "exit 0 on a bad input%s" % (": " + what if what else ""))
    if re.search(pattern, r.err + r.out, re.I):
        raise Outcome("clear", last_line(r.err))
    raise Outcome("wrong", "exit %s, message names nothing: %s" % (r.rc, last_line(r.err)))


def last_line(s):
    lines = [l for l in s.strip().splitlines() if l.strip()]
    return lines[-1][:200] if lines else ""


# ---------------------------------------------------------------- helpers


def wfile(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def rfile(path):
    with open(path, "rb") as f:
        return f.read()


def png(w, h, header_only=False):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    if header_only:
        return head
    c = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * w
    parts = [c.compress(row) for _ in range(h)]
    parts.append(c.flush())
    return head + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def bmp_header(w, h):
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + info + b"\x00" * 64


def flip(data, bit):
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def good_images(n_per_class=2, classes=("Tripos", "Ciliophora")):
    out = []
    for c in classes:
        d = os.path.join(DATA, "flowcam-demo", c)
        for name in sorted(os.listdir(d))[:n_per_class]:
            out.append((c, name, os.path.join(d, name)))
    return out


def image_folder(dst):
    """Two class folders with two good FlowCam images each (copies)."""
    for c, name, src in good_images():
        os.makedirs(os.path.join(dst, c), exist_ok=True)
        shutil.copy(src, os.path.join(dst, c, name))
    return 4


# ---------------------------------------------------------------- model blobs

HDR_FIELDS = {
    # name: (offset, struct format)
    "format_version": (8, "<H"),
    "header_len": (10, "<H"),
    "payload_len": (12, "<I"),
    "payload_crc32": (16, "<I"),
    "input_size": (20, "<H"),
    "preprocess_id": (22, "<H"),
    "embedding_dim": (24, "<H"),
    "layer_count": (26, "<H"),
    "arena_bytes": (28, "<I"),
    "macs": (32, "<I"),
    "param_bytes": (36, "<I"),
    "input_zero_point": (40, "<b"),
    "input_encoding": (41, "<B"),
    "output_zero_point": (42, "<b"),
    "reserved43": (43, "<B"),
    "output_scale": (44, "<f"),
    "reserved48": (48, "<I"),
    "reserved56": (56, "<I"),
}


def fix_header_crc(b):
    b = bytearray(b)
    b[60:64] = struct.pack("<I", zlib.crc32(bytes(b[:60])))
    return bytes(b)


def fix_payload_crc(b):
    b = bytearray(b)
    plen = struct.unpack_from("<I", b, 12)[0]
    b[16:20] = struct.pack("<I", zlib.crc32(bytes(b[64 : 64 + plen])))
    return fix_header_crc(b)


def set_field(base, name, value):
    off, fmt = HDR_FIELDS[name]
    b = bytearray(base)
    struct.pack_into(fmt, b, off, value)
    return fix_header_crc(b)


def blob_variants(base, rng):
    """(name, bytes, must_refuse)"""
    n = len(base)
    v = []
    offs = [0, 1, 4, 8, 10, 12, 16, 20, 32, 44, 48, 59, 60, 63, 64, 65, 80, 128, 1024, 4096, 65536,
            n // 2, n - 100, n - 2, n - 1]
    for o in offs:
        v.append(("trunc-%d" % o, base[:o], True))
    v.append(("trailing-16", base + b"\x00" * 16, None))
    for byte in range(64):
        bit = byte * 8 + rng.randrange(8)
        v.append(("hdrflip-byte%02d-bit%d" % (byte, bit % 8), flip(base, bit), True))
    for i in range(12):
        bit = rng.randrange(64 * 8, n * 8)
        v.append(("payloadflip-%d" % bit, flip(base, bit), True))
    for i in range(12):
        bit = rng.randrange(64 * 8, n * 8)
        v.append(("payloadflip-crcfixed-%d" % bit, fix_payload_crc(flip(base, bit)), None))
    nan = struct.unpack("<f", b"\x00\x00\xc0\x7f")[0]
    orig_scale = struct.unpack_from("<f", base, 44)[0]
    fields = [
        ("format_version", 0), ("format_version", 2), ("format_version", 0xFFFF),
        ("header_len", 0), ("header_len", 63), ("header_len", 65), ("header_len", 0xFFFF),
        ("payload_len", 0), ("payload_len", n - 64 - 1), ("payload_len", n - 64 + 1), ("payload_len", 0xFFFFFFFF),
        ("input_size", 0), ("input_size", 1), ("input_size", 32), ("input_size", 0xFFFF),
        ("preprocess_id", 0), ("preprocess_id", 99),
        ("embedding_dim", 0), ("embedding_dim", 1), ("embedding_dim", 0xFFFF),
        ("layer_count", 0), ("layer_count", 1), ("layer_count", 0xFFFF),
        ("arena_bytes", 0), ("arena_bytes", 1), ("arena_bytes", 0xFFFFFFFF),
        ("macs", 0), ("macs", 0xFFFFFFFF), ("param_bytes", 0), ("param_bytes", 0xFFFFFFFF),
        ("input_zero_point", 0), ("input_zero_point", 127), ("input_encoding", 0), ("input_encoding", 2),
        ("output_zero_point", 1), ("output_zero_point", -128), ("reserved43", 1),
        ("output_scale", nan), ("output_scale", float("inf")), ("output_scale", float("-inf")),
        ("output_scale", 0.0), ("output_scale", -0.0), ("output_scale", -1.0),
        ("output_scale", 1e-45), ("output_scale", 1e30), ("output_scale", orig_scale * 2),
        ("reserved48", 1), ("reserved56", 0xFFFFFFFF),
    ]
    for name, val in fields:
        v.append(("field-%s=%s" % (name, val), set_field(base, name, val), True))
    v.append(("magic-SEACLRX", fix_header_crc(b"SEACLRX\0" + base[8:]), True))
    v.append(("zeros-64k", b"\x00" * 65536, True))
    v.append(("ff-64k", b"\xff" * 65536, True))
    v.append(("random-4k", bytes(rng.randrange(256) for _ in range(4096)), True))
    return v


BLOB_MSG = r"blob|magic|crc|checksum|header|truncat|layer|scale|version|payload|model|zero point|arena|refus"


def blob_cases(tmp):
    base = rfile(MODEL)
    rng = random.Random(15)
    shared_dir = os.path.join(tmp, "blob-shared")
    os.makedirs(shared_dir, exist_ok=True)
    # A flash image holding the good model and 18 labels, made once.
    good_img = os.path.join(shared_dir, "good.img")
    tiny = os.path.join(shared_dir, "tiny")
    image_folder(tiny)
    prep = []

    def prepare():
        r = run([BIN["seaclr-buoy"], "run", "--data", os.path.join(DATA, "flowcam-demo"), "--out", "o",
                 "--flash", good_img, "--limit", "30", "--console", "none"], shared_dir, timeout=120)
        if r.rc != 0:
            sys.exit("preparing the good flash image failed:\n" + r.err[-2000:])
        prep.append(rfile(good_img))

    cases = []
    variants = blob_variants(base, rng)
    field_names = {name for name, _, _ in variants if name.startswith(("field-", "trunc-"))}
    for name, data, must in variants:
        def mk_inspect(name=name, data=data, must=must):
            def fn(c, d):
                p = os.path.join(d, "m.seaclr")
                wfile(p, data)
                r = c.sh([BIN["seaclr"], "model", "inspect", "--model", p], d)
                if must is None and r.rc == 0:
                    raise Outcome("correct", "accepted (checksums valid, shapes consistent)")
                if r.rc == 0 and name.startswith("field-preprocess_id"):
                    raise Outcome("wrong", "exit 0: describes the blob (%s) with every budget ok and does not say that "
                                  "this build implements another preprocessing (flash, run and embed refuse it)"
                                  % first_match(r.out, r"preprocess id \d+"))
                clear_or_wrong(r, BLOB_MSG, "bad blob accepted by inspect")
            return fn

        def mk_flash(name=name, data=data, must=must):
            def fn(c, d):
                p = os.path.join(d, "m.seaclr")
                wfile(p, data)
                img = os.path.join(d, "flash.img")
                wfile(img, prep[0])
                r = c.sh([BIN["seaclr-buoy"], "flash", "--out", img, "--model", p], d)
                after = rfile(img)
                if after != prep[0]:
                    if must is None and r.rc == 0:
                        # A valid (re-checksummed) model: check the labels stayed.
                        r2 = c.sh([BIN["seaclr-buoy"], "run", "--flash", img, "--data", tiny, "--out", "o",
                                   "--limit", "1", "--auto-label", "0", "--console", "none", "--json"], d)
                        n = json.loads(r2.out).get("labelled_examples_in_store") if r2.rc == 0 else None
                        if n == 18:
                            raise Outcome("correct", "valid model installed, 18 labels kept")
                        raise Outcome("lost", "valid model installed, labels after: %s" % n)
                    raise Outcome("lost", "flash image changed (exit %s): installed model replaced; %s"
                                  % (r.rc, last_line(r.out + r.err)))
                if must is None and r.rc == 0:
                    raise Outcome("wrong", "exit 0 but nothing installed")
                clear_or_wrong(r, BLOB_MSG, "bad blob reported as installed")
            return fn

        cases.append(Case("model blobs", "blob/inspect/" + name, mk_inspect()))
        cases.append(Case("model blobs", "blob/flash/" + name, mk_flash()))
        if name in field_names:
            def mk_run(name=name, data=data, must=must):
                def fn(c, d):
                    p = os.path.join(d, "m.seaclr")
                    wfile(p, data)
                    img = os.path.join(d, "flash.img")
                    wfile(img, prep[0])
                    r = c.sh([BIN["seaclr-buoy"], "run", "--flash", img, "--model", p, "--data", tiny, "--out", "o",
                              "--limit", "2", "--auto-label", "0", "--console", "none"], d)
                    if rfile(img)[: 2 * 4096 + 636 * 1024] != prep[0][: 2 * 4096 + 636 * 1024]:
                        raise Outcome("lost", "run --model replaced the installed model (exit %s)" % r.rc)
                    clear_or_wrong(r, BLOB_MSG, "run with a bad --model exited 0")
                return fn

            def mk_embed(name=name, data=data, must=must):
                def fn(c, d):
                    p = os.path.join(d, "m.seaclr")
                    wfile(p, data)
                    r = c.sh([BIN["seaclr"], "embed", "--model", p, "--data", tiny, "--out", "e.csv"], d)
                    if r.rc == 0:
                        csv = rfile(os.path.join(d, "e.csv")).decode("utf-8", "replace").lower()
                        raise Outcome("wrong", "embed exit 0 on a bad blob%s" % (" (NaN embeddings)" if "nan" in csv else ""))
                    clear_or_wrong(r, BLOB_MSG)
                return fn

            cases.append(Case("model blobs", "blob/run/" + name, mk_run()))
            cases.append(Case("model blobs", "blob/embed/" + name, mk_embed()))
    return prepare, cases


# ---------------------------------------------------------------- images


def image_variants(tmp):
    """(name, setup(dir) -> (expected good count, name that must be reported or None))"""
    sample = good_images(1)[0][2]
    jpg = rfile(sample)
    rng = random.Random(7)
    gen = os.path.join(tmp, "gen")
    os.makedirs(gen, exist_ok=True)
    big = os.path.join(gen, "big.png")
    if not os.path.exists(big):
        wfile(big, png(20000, 20000))

    def put(name, data):
        def s(d):
            wfile(os.path.join(d, "Ciliophora", name), data)
            return 4, name
        return s

    def fifo(d):
        os.mkfifo(os.path.join(d, "Ciliophora", "x.jpg"))
        return 4, "x.jpg"

    def loop1(d):
        os.symlink(".", os.path.join(d, "Ciliophora", "dirloop"))
        return 4, "dirloop"

    def loop2(d):
        os.symlink(".", os.path.join(d, "Ciliophora", "self"))
        os.symlink("..", os.path.join(d, "Tripos", "up"))
        return 4, "loop"

    def dangling(d):
        os.symlink("nowhere.jpg", os.path.join(d, "Ciliophora", "dangling.jpg"))
        return 4, "dangling.jpg"

    def dirjpg(d):
        os.makedirs(os.path.join(d, "Ciliophora", "dir.jpg"))
        return 4, None

    def hidden(d):
        wfile(os.path.join(d, "Ciliophora", ".hidden.jpg"), b"junk")
        return 4, None

    def nonutf8(d):
        for nm in (b"x\xff.jpg", b"x\xfe.jpg"):
            with open(os.path.join(os.fsencode(d), b"Ciliophora", nm), "wb") as f:
                f.write(jpg)
        return 6, None

    def unreadable(d):
        sub = os.path.join(d, "Locked")
        wfile(os.path.join(sub, "a.jpg"), jpg)
        os.chmod(sub, 0)
        if os.access(sub, os.R_OK):
            os.chmod(sub, 0o755)
            raise Outcome("skip", "running as root: chmod 000 does not block reads")
        return 4, "Locked"

    def bigpng(d):
        os.symlink(big, os.path.join(d, "Ciliophora", "huge.png"))
        return 4, "huge.png"

    v = [
        ("empty", put("empty.jpg", b"")),
        ("trunc-10", put("trunc10.jpg", jpg[:10])),
        ("trunc-200", put("trunc200.jpg", jpg[:200])),
        ("trunc-half", put("trunchalf.jpg", jpg[: len(jpg) // 2])),
        ("text-as-jpg", put("text.jpg", b"hello, not an image\n")),
        ("random-png", put("random.png", bytes(rng.randrange(256) for _ in range(1000)))),
        ("jpeg-soi-garbage", put("soi.jpg", b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(500)))),
        ("tiff-garbage", put("bad.tif", b"II*\x00" + bytes(rng.randrange(256) for _ in range(300)))),
        ("png-1x1", put("one.png", png(1, 1))),
        ("png-9000x2", put("wide.png", png(9000, 2))),
        ("png-header-20000x20000", put("hdr.png", png(20000, 20000, True))),
        ("png-header-5000x5000", put("hdr5k.png", png(5000, 5000, True))),
        ("png-20000x20000-valid", bigpng),
        ("bmp-header-100000", put("huge.bmp", bmp_header(100000, 100000))),
        ("bmp-negative-height", put("neg.bmp", bmp_header(64, -2147483647))),
        ("zeros-20MB", put("zeros.png", b"\x00" * (20 << 20))),
        ("fifo-x.jpg", fifo),
        ("symlink-loop", loop1),
        ("two-symlink-loops", loop2),
        ("dangling-symlink", dangling),
        ("folder-named-jpg", dirjpg),
        ("hidden-garbage", hidden),
        ("non-utf8-names", nonutf8),
        ("unreadable-subfolder", unreadable),
    ]
    # Valid edge sizes: counted, not reported.
    v.append(("png-8192x2-valid", lambda d: (wfile(os.path.join(d, "Ciliophora", "edge.png"), png(8192, 2)), (5, None))[1]))
    v.append(("png-2x2-valid", lambda d: (wfile(os.path.join(d, "Ciliophora", "two.png"), png(2, 2)), (5, None))[1]))
    return v


def image_cases(tmp):
    cases = []
    for name, setup in image_variants(tmp):
        def mk(tool, setup=setup):
            def fn(c, d):
                data = os.path.join(d, "data")
                image_folder(data)
                expect, report = setup(data)
                if tool == "stats":
                    r = c.sh([BIN["seaclr"], "data", "stats", "--json", "--data", data], d)
                    if r.rc != 0:
                        clear_or_wrong(r, report or "error")
                    got = json.loads(r.out)["images"]
                elif tool == "embed":
                    r = c.sh([BIN["seaclr"], "embed", "--model", MODEL, "--data", data, "--out", "e.csv"], d)
                    if r.rc != 0:
                        clear_or_wrong(r, report or "error")
                    lines = rfile(os.path.join(d, "e.csv")).splitlines()
                    got = len(lines) - 1
                    if expect == 6:  # both non-UTF-8 names must stay distinct
                        paths = {l.split(b",")[0] for l in lines[1:]}
                        if len(paths) != 6:
                            raise Outcome("wrong", "%d distinct paths for 6 images" % len(paths))
                else:
                    r = c.sh([BIN["seaclr-buoy"], "run", "--data", data, "--out", "o", "--limit", "50",
                              "--auto-label", "0", "--console", "none", "--json"], d)
                    if r.rc != 0:
                        clear_or_wrong(r, report or "error")
                    got = json.loads(r.out)["classified"]
                if tool == "buoy" and report is None and expect == 5 and "edge.png" in r.err:
                    # 8192x2 is within the host's limits; the buoy bins it 2x2 to 4096x1,
                    # which does not fit its 320x320 camera buffer: skipped with that reason.
                    expect, report = 4, "edge.png"
                if got != expect:
                    raise Outcome("wrong", "%d images read, expected %d" % (got, expect))
                if report and report not in r.text:
                    raise Outcome("wrong", "the bad entry (%s) is not reported" % report)
                raise Outcome("correct", "%d images, bad entry %s" % (got, "reported" if report else "ignored"))
            return fn

        for tool in ("stats", "embed", "buoy"):
            cases.append(Case("images", "images/%s/%s" % (tool, name), mk(tool)))

    # Watched folders: the run must end after --idle-s.
    def watch(kind):
        def fn(c, d):
            data = os.path.join(d, "data")
            image_folder(data)
            if kind == "empty":
                wfile(os.path.join(data, "Ciliophora", "empty.jpg"), b"")
            elif kind == "fifo":
                os.mkfifo(os.path.join(data, "Ciliophora", "x.jpg"))
            elif kind == "loop":
                os.symlink(".", os.path.join(data, "Ciliophora", "dirloop"))
            r = c.sh([BIN["seaclr-buoy"], "run", "--data", data, "--watch", "--idle-s", "2", "--out", "o",
                      "--auto-label", "0", "--console", "none", "--json"], d, timeout=30)
            if r.rc != 0:
                clear_or_wrong(r, "error")
            got = json.loads(r.out)["classified"]
            if got != 4:
                raise Outcome("wrong", "%d frames from 4 images" % got)
            raise Outcome("correct", "stopped after --idle-s, 4 frames")
        return fn

    for kind in ("none", "empty", "fifo", "loop"):
        cases.append(Case("images", "images/buoy-watch/" + kind, watch(kind), timeout=30))
    return cases


# ---------------------------------------------------------------- IFCB


def ifcb_cases(tmp):
    cases = []
    bins = ["D20130526T095207_IFCB013", "IFCB5_2012_028_081515"]

    def variants(stem):
        adc = rfile(os.path.join(DATA, "ifcb", stem + ".adc")).decode()
        roi = rfile(os.path.join(DATA, "ifcb", stem + ".roi"))
        rows = adc.splitlines(True)
        col = (15, 16, 17) if len(rows[0].split(",")) > 20 else (11, 12, 13)
        cells = lambda r: r.rstrip("\n").rstrip("\r").split(",")
        with_image = [i for i, r in enumerate(rows) if float(cells(r)[col[0]]) > 0]
        mid = with_image[len(with_image) // 2]  # a row with an image
        ins = lambda line: "".join(rows[:mid] + [line] + rows[mid:])
        fields = cells(rows[mid])
        end = max(int(float(cells(r)[col[2]])) + int(float(cells(r)[col[0]])) * int(float(cells(r)[col[1]]))
                  for r in rows)  # where the last ROI ends

        def row_with(**kw):
            f = list(fields)
            for k, v in kw.items():
                f[col[["w", "h", "s"].index(k)]] = v
            return ",".join(f) + "\n"

        v = [
            ("roi-empty", {"roi": b""}, "less"),
            ("roi-1000", {"roi": roi[:1000]}, "less"),
            ("roi-half", {"roi": roi[: len(roi) // 2]}, "less"),
            ("roi-last-roi-minus-1", {"roi": roi[: end - 1]}, "less"),
            ("roi-missing", {"roi": None}, "missing"),
            ("adc-missing", {"adc": None}, "missing"),
            ("hdr-missing", {"hdr": None}, "same"),
            ("adc-empty", {"adc": b""}, "zero"),
            ("adc-garbage-row", {"adc": ins("garbage\n").encode()}, "same"),
            ("adc-3-fields", {"adc": ins("1,2,3\n").encode()}, "same"),
            ("adc-nonnumeric-width", {"adc": ins(row_with(w="abc")).encode()}, "same+-1"),
            ("adc-huge-width", {"adc": ins(row_with(w="99999999", h="99999999")).encode()}, "same+-1"),
            ("adc-negative-width", {"adc": ins(row_with(w="-5")).encode()}, "same+-1"),
            ("adc-start-past-roi", {"adc": ins(row_with(s=str(len(roi) + 10))).encode()}, "same+-1"),
            ("adc-start-huge", {"adc": ins(row_with(s="18446744073709551615")).encode()}, "same+-1"),
            ("adc-invalid-utf8", {"adc": ins("\xff\xfe").encode("latin-1")}, "same"),
            ("adc-1MB-line", {"adc": ins("9" * (1 << 20) + "\n").encode()}, "same"),
            ("adc-crlf", {"adc": adc.replace("\n", "\r\n").encode()}, "same"),
        ]
        return v

    for stem in bins:
        base_n = {}
        for name, change, expect in variants(stem):
            def mk(tool, stem=stem, change=change, expect=expect, base_n=base_n):
                def fn(c, d):
                    data = os.path.join(d, "bin")
                    os.makedirs(data)
                    for ext in ("adc", "roi", "hdr"):
                        content = change.get(ext, rfile(os.path.join(DATA, "ifcb", stem + "." + ext)))
                        if content is not None:
                            wfile(os.path.join(data, stem + "." + ext), content)
                    target = os.path.join(data, stem + ".adc") if tool != "buoy" else os.path.join(data, stem)
                    n0 = base_n[tool]
                    if tool == "stats":
                        r = c.sh([BIN["seaclr"], "data", "stats", "--json", "--data", target], d)
                        got = json.loads(r.out)["images"] if r.rc == 0 else None
                    elif tool == "embed":
                        r = c.sh([BIN["seaclr"], "embed", "--model", MODEL, "--data", target, "--out", "e.csv"], d)
                        got = len(rfile(os.path.join(d, "e.csv")).splitlines()) - 1 if r.rc == 0 else None
                    else:
                        r = c.sh([BIN["seaclr-buoy"], "run", "--data", target, "--out", "o", "--limit", "100",
                                  "--auto-label", "0", "--console", "none", "--json"], d)
                        got = json.loads(r.out)["classified"] if r.rc == 0 else None
                    if r.rc != 0:
                        clear_or_wrong(r, r"\.adc|\.roi|\.hdr|adc|roi|ifcb|bin")
                    reported = re.search(r"skipp|past the end|unreadable: [1-9]|ADC row|line \d+:|absurd|bad field|invalid|cannot|error",
                                         r.err + r.out, re.I) is not None
                    ok = {
                        "less": got is not None and got < n0 and reported,
                        "missing": False,
                        "zero": got == 0,
                        "same": got == n0 and (expect != "same" or True),
                        "same+-1": got in (n0, n0 - 1) and reported,
                    }[expect]
                    if expect == "missing":
                        if got == 0 and re.search(r"cannot read the bin's \.(roi|adc)|\.(roi|adc).*(no such|missing|cannot)", r.text, re.I):
                            raise Outcome("correct", "0 images, the missing file reported")
                        raise Outcome("wrong", "exit 0 with a file of the bin missing (%s images)" % got)
                    if ok:
                        raise Outcome("correct", "%s of %s images" % (got, n0))
                    raise Outcome("wrong", "%s images of %s (expected %s)%s" % (got, n0, expect, "" if reported else ", nothing reported"))
                return fn

            for tool in ("stats", "embed", "buoy"):
                cases.append(Case("IFCB bins", "ifcb/%s/%s/%s" % (tool, stem[:8], name), mk(tool)))

        def prepare(stem=stem, base_n=base_n):
            d = tempfile.mkdtemp(dir=tmp)
            adc = os.path.join(DATA, "ifcb", stem + ".adc")
            r = run([BIN["seaclr"], "data", "stats", "--json", "--data", adc], d)
            base_n["stats"] = json.loads(r.out)["images"]
            r = run([BIN["seaclr"], "embed", "--model", MODEL, "--data", adc, "--out", "e.csv"], d)
            base_n["embed"] = len(rfile(os.path.join(d, "e.csv")).splitlines()) - 1
            r = run([BIN["seaclr-buoy"], "run", "--data", adc[:-4], "--out", "o", "--limit", "100",
                     "--auto-label", "0", "--console", "none", "--json"], d)
            base_n["buoy"] = json.loads(r.out)["classified"]

        PREPARE.append(prepare)
    return cases


PREPARE = []

# ---------------------------------------------------------------- flash images and power cuts

TOTAL = 2 * 4096 + (636 + 384) * 1024
MODEL_OFF, STORE_OFF = 2 * 4096, 2 * 4096 + 636 * 1024


def flash_cases(tmp):
    shared_dir = os.path.join(tmp, "flash-shared")
    os.makedirs(shared_dir, exist_ok=True)
    labelled = os.path.join(shared_dir, "labelled.img")
    fresh = os.path.join(shared_dir, "model.img")
    flowcam = os.path.join(DATA, "flowcam-demo")
    state = {}

    def prepare():
        r = run([BIN["seaclr-buoy"], "flash", "--out", fresh], shared_dir)
        assert r.rc == 0, r.err
        shutil.copy(fresh, labelled)
        r = run([BIN["seaclr-buoy"], "run", "--flash", labelled, "--data", flowcam, "--out", "o", "--limit", "30",
                 "--console", "none"], shared_dir, timeout=120)
        assert r.rc == 0, r.err
        state["labelled"] = rfile(labelled)
        state["fresh"] = rfile(fresh)
        state["used"] = max(i for i in range(STORE_OFF, TOTAL) if state["labelled"][i] != 0xFF)

    PREPARE.append(prepare)

    def labels_now(c, d, img, expect_rc=(0,)):
        r = c.sh([BIN["seaclr-buoy"], "run", "--flash", img, "--data", flowcam, "--out", "o", "--limit", "1",
                  "--auto-label", "0", "--console", "none", "--json"], d)
        n = None
        if r.out.strip().startswith("{"):
            n = json.loads(r.out).get("labelled_examples_in_store")
        return r, n

    rng = random.Random(3)
    cases = []

    def damaged(name, mutate, expect):
        """expect: 'boot' (boots with 18 labels), 'refuse' (clear error, image untouched)."""
        def fn(c, d):
            img = os.path.join(d, "flash.img")
            data = mutate(bytearray(state["labelled"]))
            wfile(img, bytes(data))
            r, n = labels_now(c, d, img)
            if r.rc == 0 and n == 18:
                raise Outcome("correct", "booted, 18 labels; " + (first_match(r.err, r"damaged|copy|table") or ""))
            if r.rc == 0:
                raise Outcome("lost", "booted with %s of 18 labels" % n)
            if expect == "model" and r.rc == 4:
                # classification off; reinstall the model, the labels must still be there
                c.sh([BIN["seaclr-buoy"], "flash", "--out", img], d)
                r2, n2 = labels_now(c, d, img)
                if n2 == 18:
                    raise Outcome("clear", "exit 4 (%s); after reinstalling the model 18 labels" % last_line(first_match(r.err, r"model.*") or ""))
                raise Outcome("lost", "after reinstalling the model %s of 18 labels" % n2)
            if rfile(img) != bytes(data):
                raise Outcome("lost", "exit %s and the damaged image was rewritten" % r.rc)
            clear_or_wrong(r, r"flash|table|image|partition|truncat|size")
        return fn

    def flip_in(lo, hi, seed):
        def m(b):
            r = random.Random(seed)
            bit = r.randrange(lo * 8, hi * 8)
            b[bit // 8] ^= 1 << (bit % 8)
            return b
        return m

    def erase(lo, hi, val=0xFF):
        def m(b):
            b[lo:hi] = bytes([val]) * (hi - lo)
            return b
        return m

    for i in range(10):
        cases.append(Case("flash images", "flashimg/tableA-flip-%d" % i, damaged("", flip_in(0, 64, i), "boot")))
        cases.append(Case("flash images", "flashimg/tableB-flip-%d" % i, damaged("", flip_in(4096, 4096 + 64, 100 + i), "boot")))
    for i in range(3):
        def both(b, i=i):
            return flip_in(4096, 4096 + 64, 200 + i)(flip_in(0, 64, 300 + i)(b))
        cases.append(Case("flash images", "flashimg/both-tables-flip-%d" % i, damaged("", both, "refuse")))
    cases.append(Case("flash images", "flashimg/erase-sector0", damaged("", erase(0, 4096), "boot")))
    cases.append(Case("flash images", "flashimg/erase-sector1", damaged("", erase(4096, 8192), "boot")))
    cases.append(Case("flash images", "flashimg/zero-sector0", damaged("", erase(0, 4096, 0), "boot")))
    cases.append(Case("flash images", "flashimg/erase-both-tables", damaged("", erase(0, 8192), "refuse")))
    for i in range(6):
        cases.append(Case("flash images", "flashimg/model-flip-%d" % i, damaged("", flip_in(MODEL_OFF, MODEL_OFF + 241724, 400 + i), "model")))
    cases.append(Case("flash images", "flashimg/model-erased", damaged("", erase(MODEL_OFF, MODEL_OFF + 4096), "model")))
    for size in (0, 100, 4096, 8192, 8192 + 100000, TOTAL - 4096, TOTAL - 1):
        cases.append(Case("flash images", "flashimg/truncated-%d" % size, damaged("", lambda b, s=size: b[:s], "refuse")))
    cases.append(Case("flash images", "flashimg/extended-4096", damaged("", lambda b: b + b"\xff" * 4096, "refuse")))

    # Power cuts: cut during flash write N+1, reboot, count the labels.
    def cut(start, n=None, seed=None, prior=0):
        def fn(c, d):
            img = os.path.join(d, "flash.img")
            wfile(img, state[start])
            argv = [BIN["seaclr-buoy"], "run", "--flash", img, "--data", flowcam, "--out", "o", "--limit", "40",
                    "--console", "none"]
            argv += ["--cut-after-writes", str(n)] if n is not None else ["--random-cut", str(seed)]
            r = c.sh(argv, d)
            acked = len(re.findall(r"^ok frame .* labelled", r.out + "\n" + r.err, re.M))
            if r.rc not in (0, 3):
                raise Outcome("wrong", "first run exit %s: %s" % (r.rc, last_line(r.err)))
            r2, got = labels_now(c, d, img)
            if r2.rc != 0 or got is None:
                raise Outcome("lost", "reboot exit %s: %s (%d labels acknowledged)" % (r2.rc, last_line(r2.err), prior + acked))
            if got < prior + acked:
                raise Outcome("lost", "%d labels acknowledged, %d after reboot" % (prior + acked, got))
            raise Outcome("correct", "%s; %d acknowledged, %d after reboot" % ("cut" if r.rc == 3 else "no cut", prior + acked, got))
        return fn

    for n in range(0, 48):
        cases.append(Case("power cuts", "cut/fresh-store/after-%d-writes" % n, cut("fresh", n=n)))
    for n in range(0, 48, 2):
        cases.append(Case("power cuts", "cut/18-labels/after-%d-writes" % n, cut("labelled", n=n, prior=18)))
    for s in range(30):
        cases.append(Case("power cuts", "cut/fresh-store/random-%d" % s, cut("fresh", seed=s)))
    for s in range(20):
        cases.append(Case("power cuts", "cut/18-labels/random-%d" % s, cut("labelled", seed=s, prior=18)))
    return cases


def first_match(s, pat):
    m = re.search(pat, s, re.I)
    return m.group(0)[:200] if m else None


# ---------------------------------------------------------------- console

CONSOLE_INPUTS = [
    # (name, bytes, reply pattern that must appear for the bad input)
    ("long-line-1MB", b"x" * (1 << 20) + b"\n", r"error:.*(long|line)"),
    ("long-line-1MB-no-newline-then-help", b"y" * (1 << 20), None),
    ("invalid-utf8", b"\xff\xfe\xfd status\n", r"error:.*utf"),
    ("nul-bytes", b"\x00\x00status\x00\n", r"error:"),
    ("unknown-command", b"frobnicate now\n", r"error:.*unknown command"),
    ("unknown-command-long-word", b"z" * 150 + b"\n", r"error:.*unknown"),
    ("empty-lines", b"\n\n\r\n   \n", None),
    ("label-unknown-frame", b"label 999999 Tripos\n", r"error:"),
    ("label-usage", b"label 1\n", r"error:.*usage"),
    ("label-undeclared-class", b"label 1 Nope\n", r"error:"),
    ("addclass-too-long", b"addclass " + b"a" * 40 + b"\n", r"error:.*1 to"),
    ("addclass-bad-chars", b"addclass bad/name\n", r"error:.*class name"),
    ("addclass-65-classes", b"".join(b"addclass c%d\n" % i for i in range(70)), r"error:.*(64|limit|full|too many)"),
    ("threshold-nan", b"threshold nan\n", r"error:.*threshold"),
    ("threshold-negative", b"threshold -1\n", r"error:.*threshold"),
    ("threshold-huge", b"threshold 1e40\n", r"error:.*threshold"),
    ("threshold-word", b"threshold abc\n", r"error:.*not a number"),
    ("forget-unknown-frame", b"forget 12345\n", r"error:"),
    ("forget-unknown-class", b"forget class nope\n", r"error:"),
    ("10000-status", b"status\n" * 10000, r"ok"),
    ("binary-noise", bytes(random.Random(9).randrange(256) for _ in range(4096)) + b"\n", r"error:"),
    ("crlf-commands", b"status\r\ncounts\r\n", r"ok"),
]


def console_cases(tmp):
    cases = []
    flowcam = os.path.join(DATA, "flowcam-demo")

    def check_replies(text, pat, extra="", long_line=False):
        if "commands:" not in text:
            raise Outcome("wrong", "no reply to the final `help`" + extra)
        if pat and not re.search(pat, text, re.I | re.M):
            raise Outcome("wrong", "no reply matching /%s/%s" % (pat, extra))
        if long_line and len(text) > 100000:
            raise Outcome("wrong", "%d bytes of replies to one long line (echoed back?)" % len(text))

    for name, payload, pat in CONSOLE_INPUTS:
        def stdin_fn(c, d, payload=payload, pat=pat, name=name):
            # --watch keeps the run (and its console) going until 3 s without a new
            # file (a finite source ends the run at its last frame, and console lines
            # that arrive after that are not served); stdin stays open until the run
            # ends (see console/stdin/watch-closed-stdin for why).
            data = os.path.join(d, "data")
            image_folder(data)
            r = c.sh([BIN["seaclr-buoy"], "run", "--data", data, "--watch", "--idle-s", "3", "--out", "o",
                      "--auto-label", "0", "--console", "stdin"], d, stdin=payload + b"\nhelp\n", keep_stdin_open=True)
            if r.rc != 0:
                raise Outcome("wrong", "exit %s: %s" % (r.rc, last_line(r.err)))
            check_replies(r.out + r.err, pat, long_line=name.startswith("long-line"))
            raise Outcome("correct", "replied, console alive")

        def tcp_fn(c, d, payload=payload, pat=pat, name=name):
            data = os.path.join(d, "data")
            image_folder(data)
            argv = [BIN["seaclr-buoy"], "run", "--data", data, "--watch", "--idle-s", "4", "--out", "o",
                    "--auto-label", "0", "--console", "tcp:0"]
            p = subprocess.Popen(argv, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            out_lines, err_buf = [], []
            port = [None]
            got_port = threading.Event()

            def rd_out():
                for line in iter(p.stdout.readline, b""):
                    s = line.decode("utf-8", "replace")
                    out_lines.append(s)
                    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", s)
                    if m:
                        port[0] = int(m.group(1))
                        got_port.set()

            def rd_err():
                err_buf.append(p.stderr.read())

            ts = [threading.Thread(target=rd_out, daemon=True), threading.Thread(target=rd_err, daemon=True)]
            for t in ts:
                t.start()
            replies = b""
            try:
                if not got_port.wait(10):
                    raise Outcome("wrong", "no `listening on` line")
                s = socket.create_connection(("127.0.0.1", port[0]), timeout=5)
                s.settimeout(5)
                try:
                    s.sendall(payload + b"\nhelp\n")
                except OSError:
                    pass
                t_end = time.time() + 5
                while time.time() < t_end and b"commands:" not in replies:
                    try:
                        chunk = s.recv(65536)
                    except (socket.timeout, OSError):
                        break
                    if not chunk:
                        break
                    replies += chunk
                s.close()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    raise Outcome("hang", "did not stop 4 s after the last frame and the client")
            finally:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                for t in ts:
                    t.join(2)
                err = b"".join(err_buf).decode("utf-8", "replace")
                c.log.append(Res(argv, p.returncode, "".join(out_lines), err, False, 0))
            if p.returncode == 101 or "panicked at" in err:
                raise Outcome("panic", first_panic(err))
            if p.returncode != 0:
                raise Outcome("wrong", "exit %s: %s" % (p.returncode, last_line(err)))
            check_replies(replies.decode("utf-8", "replace"), pat, " over TCP", long_line=name.startswith("long-line"))
            raise Outcome("correct", "replied over TCP, console alive")

        cases.append(Case("console", "console/stdin/" + name, stdin_fn, timeout=40))
        cases.append(Case("console", "console/tcp/" + name, tcp_fn, timeout=40))
    def closed_stdin(c, d):
        data = os.path.join(d, "data")
        image_folder(data)
        r = c.sh([BIN["seaclr-buoy"], "run", "--data", data, "--watch", "--idle-s", "3", "--out", "o",
                  "--auto-label", "0", "--console", "stdin"], d, stdin=b"")
        if r.rc == 0 and r.secs >= 2.5:
            raise Outcome("correct", "watched for %.1f s" % r.secs)
        raise Outcome("wrong", "exit %s after %.1f s: --watch --idle-s 3 stopped early with stdin at its end" % (r.rc, r.secs))

    cases.append(Case("console", "console/stdin/watch-closed-stdin", closed_stdin))
    return cases


# ---------------------------------------------------------------- telemetry


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tmsg(version=1, buoy=1, seq=0, start=0, length=60, model=0xEE74FCA1, frames=5, unknown=0, counts=(1, 3, 0, 1, 0, 0), trailing=b"", raw_counts=None):
    body = bytes([version]) + varint(buoy) + varint(seq) + varint(start) + varint(length) + varint(model)
    body += varint(frames) + varint(unknown)
    body += raw_counts if raw_counts is not None else varint(len(counts)) + b"".join(varint(c) for c in counts)
    m = b"\xc1" + body + trailing
    return m + struct.pack("<H", crc16(m))


def telemetry_cases(tmp):
    cases = []
    good = [tmsg(seq=i, start=60 * i, frames=5 + i, counts=(1 + i, 3, 0, 1, 0, 0)) for i in range(4)]
    assert good[0].hex() == "c1010100003ca1f9d3f30e0500060103000100002c02", good[0].hex()

    def decode_file(content, check):
        def fn(c, d):
            p = os.path.join(d, "t.hex")
            wfile(p, content)
            r = c.sh([BIN["seaclr"], "telemetry", "decode", "--data", p], d)
            check(r)
        return fn

    def must_refuse(r):
        clear_or_wrong(r, r"crc|magic|short|malformed|version|trailing|count|frames|hex|line|class")

    base = good[0]
    for bit in range(len(base) * 8):
        cases.append(Case("telemetry", "telemetry/bitflip-%03d" % bit, decode_file((flip(base, bit).hex() + "\n").encode(), must_refuse)))
    for n in range(len(base)):
        cases.append(Case("telemetry", "telemetry/trunc-%02d" % n, decode_file((base[:n].hex() + "\n").encode(), must_refuse)))
        cases.append(Case("telemetry", "telemetry/raw-trunc-%02d" % n, decode_file(base[:n] if n else b"", must_refuse)))
    crafted = [
        ("count-4294967295", tmsg(counts=(0xFFFFFFFF, 0))),
        ("count-above-frames", tmsg(frames=5, counts=(6, 0))),
        ("count-above-max", tmsg(frames=0xFFFFFFFF, counts=(1 << 21, 0))),
        ("unknown-above-frames", tmsg(frames=2, unknown=3, counts=())),
        ("101-classes", tmsg(frames=0, counts=(0,) * 101)),
        ("version-2", tmsg(version=2)),
        ("trailing-byte", tmsg(trailing=b"\x00")),
        ("class-count-huge", tmsg(raw_counts=varint(0xFFFFFFFF))),
        ("varint-overlong", tmsg(raw_counts=b"\x01\xff\xff\xff\xff\xff\xff")),
        ("sum-above-frames-by-1", tmsg(frames=100 * ((1 << 21) - 1) - 1, counts=((1 << 21) - 1,) * 100)),
    ]
    for name, m in crafted:
        cases.append(Case("telemetry", "telemetry/crc-valid/" + name, decode_file((m.hex() + "\n").encode(), must_refuse)))

    goods = {g.hex().encode() for g in good}

    def mixed_content(bad):
        lines = [good[0].hex(), bad[0], good[1].hex()] + list(bad[1:]) + [good[2].hex(), good[3].hex()]
        lines = [l if isinstance(l, bytes) else l.encode() for l in lines]
        bad_nums = [i + 1 for i, l in enumerate(lines) if l not in goods]
        return b"\n".join(lines) + b"\n", bad_nums

    def mixed(bad_nums):
        def check(r):
            n_good = r.out.count("telemetry v1")
            if n_good != 4:
                raise Outcome("wrong", "%d of 4 good lines decoded" % n_good)
            if r.rc == 0:
                raise Outcome("wrong", "exit 0 with bad lines")
            missing = [n for n in bad_nums if not re.search(r"\b%d\b" % n, r.err)]
            if missing:
                raise Outcome("wrong", "bad line(s) %s not reported" % missing)
            raise Outcome("correct", "4 good lines decoded, bad lines %s reported" % bad_nums)
        return check

    bad_sets = [
        ("not-hex", ["hello world"]),
        ("odd-digits", [good[0].hex()[:-1]]),
        ("bitflip", [flip(good[1], 37).hex()]),
        ("truncated", [good[2].hex()[:20]]),
        ("invalid-utf8", [b"\xff\xfe\xfd"]),
        ("1MB-line", ["ab" * (1 << 19)]),
        ("several", ["zz", flip(good[0], 3).hex(), "c1"]),
        ("crc-valid-bad-count", [tmsg(counts=(0xFFFFFFFF,)).hex()]),
    ]
    for name, bad in bad_sets:
        content, nums = mixed_content(bad)
        cases.append(Case("telemetry", "telemetry/mixed/" + name, decode_file(content, mixed(nums))))

    def all_good(r):
        if r.rc == 0 and r.out.count("telemetry v1") == 4:
            raise Outcome("correct", "4 messages")
        raise Outcome("wrong", "exit %s, %d messages" % (r.rc, r.out.count("telemetry v1")))

    cases.append(Case("telemetry", "telemetry/good-4-lines", decode_file(("\n".join(g.hex() for g in good) + "\n").encode(), all_good)))
    cases.append(Case("telemetry", "telemetry/good-crlf-blank-lines", decode_file(("\r\n\r\n".join(g.hex() for g in good) + "\r\n").encode(), all_good)))

    def raw_good(r):
        if r.rc == 0 and r.out.count("telemetry v1") == 1:
            raise Outcome("correct", "raw message decoded")
        raise Outcome("wrong", "exit %s" % r.rc)

    cases.append(Case("telemetry", "telemetry/raw-good", decode_file(good[0], raw_good)))
    cases.append(Case("telemetry", "telemetry/raw-bitflip", decode_file(flip(good[0], 50), must_refuse)))
    cases.append(Case("telemetry", "telemetry/empty-file", decode_file(b"", must_refuse)))
    cases.append(Case("telemetry", "telemetry/zeros-1MB", decode_file(b"\x00" * (1 << 20), must_refuse)))

    def missing(c, d):
        r = c.sh([BIN["seaclr"], "telemetry", "decode", "--data", os.path.join(d, "missing.hex")], d)
        must_refuse(r)

    cases.append(Case("telemetry", "telemetry/missing-file", missing))
    return cases


# ---------------------------------------------------------------- training configs

GOOD_CFG = "batch_size = 4\nmax_steps = 1\nmax_val_images = 4\ncheckpoint_every = 1\n"


def train_cases(tmp):
    cases = []
    bad = [
        ("lr-nan", "[optimizer]\nlearning_rate = nan\n", "learning_rate"),
        ("lr-inf", "[optimizer]\nlearning_rate = inf\n", "learning_rate"),
        ("lr-negative", "[optimizer]\nlearning_rate = -0.001\n", "learning_rate"),
        ("lr-zero", "[optimizer]\nlearning_rate = 0.0\n", "learning_rate"),
        ("lr-string", "[optimizer]\nlearning_rate = \"fast\"\n", "learning_rate"),
        ("final-lr-nan", "[optimizer]\nfinal_lr_fraction = nan\n", "final_lr_fraction"),
        ("final-lr-2", "[optimizer]\nfinal_lr_fraction = 2.0\n", "final_lr_fraction"),
        ("final-lr-negative", "[optimizer]\nfinal_lr_fraction = -0.5\n", "final_lr_fraction"),
        ("warmup-negative", "[optimizer]\nwarmup_steps = -1\n", "warmup_steps"),
        ("optimizer-kind", "[optimizer]\nkind = \"sgd-magic\"\n", "kind"),
        ("temperature-zero", "temperature = 0.0\n", "temperature"),
        ("temperature-nan", "temperature = nan\n", "temperature"),
        ("temperature-negative", "temperature = -0.1\n", "temperature"),
        ("temperature-inf", "temperature = inf\n", "temperature"),
        ("batch-zero", "batch_size = 0\n", "batch_size"),
        ("batch-one", "batch_size = 1\n", "batch_size"),
        ("batch-negative", "batch_size = -4\n", "batch_size"),
        ("batch-float", "batch_size = 4.5\n", "batch_size"),
        ("batch-huge", "batch_size = 99999999999\n", "batch"),
        ("no-steps", "epochs = 0\nmax_steps = 0\n", "epochs|max_steps"),
        ("epochs-negative", "epochs = -1\n", "epochs"),
        ("checkpoint-every-zero", "checkpoint_every = 0\n", "checkpoint_every"),
        ("keep-last-zero", "keep_last = 0\n", "keep_last"),
        ("seed-negative", "seed = -1\n", "seed"),
        ("max-val-negative", "max_val_images = -1\n", "max_val_images"),
        ("input-size-zero", "[model]\ninput_size = 0\n", "input_size"),
        ("input-size-7", "[model]\ninput_size = 7\n", "input_size"),
        ("input-size-huge", "[model]\ninput_size = 100000\n", "input_size"),
        ("stages-empty", "[model]\nstage_channels = []\n", "stage_channels"),
        ("stages-zero", "[model]\nstage_channels = [0, 32, 64, 128]\n", "stage_channels"),
        ("entry-mismatch", "[model]\nentry_channels = [16]\n", "entry_channels"),
        ("augment-source-zero", "[augment]\nsource_size = 0\n", "source_size"),
        ("augment-source-smaller", "[augment]\nsource_size = 32\n", "source_size|input_size"),
        ("unknown-key", "learning_rat = 0.1\n", "learning_rat"),
        ("unknown-table", "[optimiser]\nlearning_rate = 0.1\n", "optimiser"),
        ("table-as-value", "optimizer = 3\n", "optimizer"),
        ("toml-syntax", "batch_size = = 4\n", "toml|parse|expected|line"),
        ("invalid-utf8", b"batch_size = 4\n# \xff\xfe\n", "utf|config|toml"),
        ("duplicate-key", "batch_size = 4\nbatch_size = 8\n", "duplicate|batch_size"),
    ]

    tiny_dir = os.path.join(tmp, "train-tiny")

    def prep():
        image_folder(tiny_dir)

    PREPARE.append(prep)

    for name, text, key in bad:
        # Keys already in GOOD_CFG are overridden by appending? TOML forbids duplicates, so
        # write the bad key without the good one where they collide.
        def fn_factory(name=name, text=text, key=key):
            def fn(c, d):
                t = text if isinstance(text, bytes) else text.encode()
                base_lines = [l for l in GOOD_CFG.splitlines(True)
                              if l.split("=")[0].strip().encode() not in [x.split(b"=")[0].strip() for x in t.splitlines()]]
                cfg_bytes = b"".join(l.encode() for l in base_lines) + t
                if name == "duplicate-key":
                    cfg_bytes = GOOD_CFG.encode() + t
                cfg = os.path.join(d, "c.toml")
                wfile(cfg, cfg_bytes)
                r = c.sh([BIN["seaclr"], "train", "--data", tiny_dir, "--config", cfg, "--out", "run", "--no-progress"], d, timeout=60)
                ck = os.path.join(d, "run", "checkpoints")
                if r.rc == 0 and name in ("keep-last-zero", "augment-source-smaller") and os.path.isdir(ck) and os.listdir(ck):
                    # Valid after all: keep_last = 0 still keeps the newest checkpoint;
                    # a source smaller than the input is upscaled.
                    raise Outcome("correct", "accepted, 1 step, checkpoint written")
                if r.rc == 0:
                    raise Outcome("wrong", "config accepted, training ran")
                if r.rc != 1:
                    raise Outcome("wrong", "exit %s (documented: 1): %s" % (r.rc, last_line(r.err)))
                clear_or_wrong(r, key)
            return fn
        cases.append(Case("training configs", "train/config/" + name, fn_factory(), timeout=60))

    def good(text, name):
        def fn(c, d):
            cfg = os.path.join(d, "c.toml")
            wfile(cfg, text.encode())
            r = c.sh([BIN["seaclr"], "train", "--data", tiny_dir, "--config", cfg, "--out", "run", "--no-progress"], d, timeout=60)
            ck = os.path.join(d, "run", "checkpoints")
            if r.rc == 0 and os.path.isdir(ck) and os.listdir(ck):
                raise Outcome("correct", "1 step, checkpoint written")
            raise Outcome("wrong", "exit %s: %s" % (r.rc, last_line(r.err)))
        return fn

    cases.append(Case("training configs", "train/config/minimal-1-step", good(GOOD_CFG, "min"), timeout=60))
    cases.append(Case("training configs", "train/config/missing-tables-1-step", good("max_steps = 1\nbatch_size = 2\n", "b2"), timeout=60))

    def other(argv_tail, pat, name):
        def fn(c, d):
            cfg = os.path.join(d, "c.toml")
            wfile(cfg, GOOD_CFG.encode())
            tail = [a.replace("TINY", tiny_dir).replace("CFG", cfg) for a in argv_tail]
            r = c.sh([BIN["seaclr"], "train"] + tail + ["--no-progress"], d, timeout=60)
            clear_or_wrong(r, pat)
        return fn

    def sigint(c, d):
        cfg = os.path.join(d, "c.toml")
        wfile(cfg, b"batch_size = 4\nmax_steps = 100000\nmax_val_images = 4\ncheckpoint_every = 1000\n")
        argv = [BIN["seaclr"], "train", "--data", tiny_dir, "--config", cfg, "--out", "run", "--no-progress"]
        p = subprocess.Popen(argv, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            raise Outcome("hang", "still running 30 s after SIGINT")
        r = Res(argv, p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), False, 0)
        c.log.append(r)
        if r.panicked():
            raise Outcome("panic", first_panic(r.err))
        ck = os.path.join(d, "run", "checkpoints")
        steps = [x for x in os.listdir(ck) if x.startswith("step-")] if os.path.isdir(ck) else []
        if r.rc != 130 or not steps:
            raise Outcome("wrong" if steps else "lost", "exit %s after SIGINT, checkpoints %s" % (r.rc, steps))
        raise Outcome("correct", "exit 130, checkpoint %s" % max(steps))

    cases.append(Case("training configs", "train/sigint-checkpoints", sigint, timeout=60))
    cases.append(Case("training configs", "train/config-missing-file", other(["--data", "TINY", "--config", "nope.toml", "--out", "run"], "nope.toml", "")))
    cases.append(Case("training configs", "train/config-is-a-folder", other(["--data", "TINY", "--config", ".", "--out", "run"], r"config|directory|folder", "")))
    cases.append(Case("training configs", "train/resume-without-run", other(["--data", "TINY", "--out", "norun", "--resume"], r"norun|checkpoint", "")))
    cases.append(Case("training configs", "train/init-from-blob", other(["--data", "TINY", "--config", "CFG", "--out", "run", "--init-from", MODEL], r"seaclr-s\.seaclr|checkpoint", "")))
    cases.append(Case("training configs", "train/init-from-missing", other(["--data", "TINY", "--config", "CFG", "--out", "run", "--init-from", "nope-ckpt"], r"nope-ckpt", "")))
    cases.append(Case("training configs", "train/data-missing", other(["--data", "no-such-folder", "--config", "CFG", "--out", "run"], r"no-such-folder", "")))
    return cases


# ---------------------------------------------------------------- main


def main():
    global ARGS, DATA, MODEL
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "reliability", "results.md"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ARGS = ap.parse_args()
    DATA = os.path.abspath(ARGS.data)
    MODEL = os.path.join(ROOT, "models", "seaclr-s.seaclr")
    for b in ("seaclr", "seaclr-buoy"):
        BIN[b] = os.path.join(os.path.abspath(ARGS.bin), b)
        if not os.access(BIN[b], os.X_OK):
            sys.exit("%s not found: cargo build --release -p seaclr-trainer -p seaclr-firmware-sim (or --bin DIR)" % BIN[b])
    tmp = tempfile.mkdtemp(prefix="seaclr-reliability-")
    t0 = time.time()
    try:
        prep_blob, cases = blob_cases(tmp)
        cases += image_cases(tmp) + ifcb_cases(tmp) + flash_cases(tmp) + console_cases(tmp)
        cases += telemetry_cases(tmp) + train_cases(tmp)
        if ARGS.only:
            cases = [c for c in cases if ARGS.only in c.id]
        areas = {c.area for c in cases}
        if "model blobs" in areas:
            prep_blob()
        for p in PREPARE:
            p()
        done = [0]
        lock = threading.Lock()

        def one(i_case):
            i, c = i_case
            d = os.path.join(tmp, "case-%04d" % i)
            os.makedirs(d)
            try:
                c.fn(c, d)
                c.outcome, c.note = "wrong", "no verdict"
            except Outcome as o:
                c.outcome, c.note = o.kind, o.note
            except Exception as e:  # a harness error is reported, not hidden
                c.outcome, c.note = "wrong", "harness: %r" % (e,)
            finally:
                if not ARGS.keep:
                    for root, dirs, _ in os.walk(d):
                        for x in dirs:
                            try:
                                os.chmod(os.path.join(root, x), 0o755)
                            except OSError:
                                pass
                    shutil.rmtree(d, ignore_errors=True)
            with lock:
                done[0] += 1
                if c.outcome not in ("correct", "clear", "skip") or ARGS.verbose:
                    print("[%d/%d] %-7s %s: %s" % (done[0], len(cases), c.outcome, c.id, c.note), flush=True)
                if ARGS.verbose:
                    for r in c.log:
                        print("    $ %s\n      exit %s%s\n      stdout: %s\n      stderr: %s" % (
                            short(r.argv), r.rc, " (timeout)" if r.timed_out else "",
                            r.out.strip()[-400:].replace("\n", "\n              "),
                            r.err.strip()[-400:].replace("\n", "\n              ")))
            return c

        with cf.ThreadPoolExecutor(ARGS.jobs) as ex:
            list(ex.map(one, enumerate(cases)))
    finally:
        if ARGS.keep:
            print("generated cases kept in", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    secs = time.time() - t0
    rows = []
    tot = {k: 0 for k in OUTCOMES + ["skip", "cases"]}
    for a in AREAS:
        cs = [c for c in cases if c.area == a]
        if not cs:
            continue
        n = {k: sum(1 for c in cs if c.outcome == k) for k in OUTCOMES + ["skip"]}
        n["cases"] = len(cs) - n["skip"]
        for k in tot:
            tot[k] += n[k]
        rows.append((a, n))
    rows.append(("**total**", tot))
    hdr = "| area | cases | correct result | clear error | panic or crash | hang | data lost | wrong or unclear |\n|---|---|---|---|---|---|---|---|\n"
    table = hdr + "".join("| %s | %d | %d | %d | %d | %d | %d | %d |\n" % (
        a, n["cases"], n["correct"], n["clear"], n["panic"], n["hang"], n["lost"], n["wrong"]) for a, n in rows)
    bad = [c for c in cases if c.outcome in ("panic", "hang", "lost", "wrong")]
    skipped = [c for c in cases if c.outcome == "skip"]
    md = ["# Reliability run\n\n",
          "`python3 bench/reliability/run.py` on %s (release tools, committed model, `../shared/data`), %d cases in %.0f s.\n\n"
          % (time.strftime("%Y-%m-%d"), tot["cases"], secs),
          table]
    if bad:
        md.append("\n## Cases that are not a correct result or a clear error\n\n"
                  "Rerun one with `python3 bench/reliability/run.py --only ID --verbose --keep`.\n\n")
        for c in bad:
            md.append("- `%s` (%s): %s\n" % (c.id, c.outcome, c.note.replace("\n", " ")))
    if skipped:
        md.append("\n## Not run\n\n")
        for c in skipped:
            md.append("- `%s`: %s\n" % (c.id, c.note))
    text = "".join(md)
    if not ARGS.only:
        with open(ARGS.out, "w") as f:
            f.write(text)
    print()
    print(table)
    print("%d cases in %.0f s%s" % (tot["cases"], secs, "" if ARGS.only else "; written to " + ARGS.out))
    sys.exit(1 if tot["panic"] or tot["hang"] or tot["lost"] else 0)


if __name__ == "__main__":
    main()
