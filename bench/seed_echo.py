#!/usr/bin/env python3
"""The seed article's approach as a benchmark baseline, ported to Python 3.

  seed_echo.py server IN OUT
  seed_echo.py client pingpong  IN OUT COUNT SIZE
  seed_echo.py client pipelined IN OUT COUNT SIZE
  seed_echo.py client bulk      IN OUT TOTAL CHUNK [raw|length]

Same argv shapes, limits, workloads and JSON line ({"ops":N,"bytes":B,"ns":T})
as c_echo.c, so either client runs against either server. The server prints
every read as the seed does: send its stdout to /dev/null. Payloads are runs
of "abc..z", which never contain the seed's "exit" stop word.
"""
import json
import os
import sys
import threading
import time

READ = 1024  # the seed's read size, on both sides
PIPE_BUF = 65536  # Linux's default pipe capacity, the largest pingpong message
ALPHABET = b"abcdefghijklmnopqrstuvwxyz"


def die(msg):
    # os._exit: also works from the writer thread, and never waits on a blocked writer.
    print("error: %s" % msg, file=sys.stderr, flush=True)
    os._exit(1)


def write_all(fd, data):
    # The seed ignores os.write's count; a short write would corrupt the benchmark.
    n = os.write(fd, data)
    while n < len(data):
        n += os.write(fd, data[n:])


def server(in_path, out_path):
    rf = os.open(in_path, os.O_RDONLY)
    # The seed also passes O_CREAT: dropped so a missing FIFO fails instead of
    # silently becoming a regular file. O_RDWR keeps the seed's non-blocking open.
    wf = os.open(out_path, os.O_SYNC | os.O_RDWR)
    while True:
        s = os.read(rf, READ)
        print("received msg: %s" % s.decode(errors="backslashreplace"))
        if len(s) == 0:
            break  # the seed sleeps 1 s and retries forever; a benchmark must end
        if b"exit" in s:
            break
        write_all(wf, memoryview(s))
    os.close(rf)
    os.close(wf)


def template(length, newline, header):
    t = bytearray((ALPHABET * (length // 26 + 1))[:length])
    if newline:
        t[-1] = ord("\n")
    if header:
        t[:4] = (length - 4).to_bytes(4, "big")
    return bytes(t)


def receive(rf, ext, length, total):
    # ext is the template repeated over length + READ bytes: one slice checks any read.
    got = 0
    while got < total:
        s = os.read(rf, READ)
        if not s:
            die("EOF after %d of %d bytes" % (got, total))
        if got + len(s) > total:
            die("%d bytes echoed, %d sent" % (got + len(s), total))
        off = got % length
        if s != ext[off:off + len(s)]:
            die("echo differs within bytes %d..%d" % (got, got + len(s)))
        got += len(s)


def sender(wf, tmpl, total):
    try:
        view = memoryview(tmpl)
        for sent in range(0, total, len(tmpl)):
            write_all(wf, view[:total - sent])
    except OSError as e:
        die("write: %s" % e)


def positive(s):
    if not s.isdigit() or int(s) == 0:
        die("not a positive number: %s" % s)
    return int(s)


def client(mode, in_path, out_path, a, b, framing=None):
    n, length = positive(a), positive(b)
    bulk = mode == "bulk"
    header = framing == "length"
    if mode == "pingpong" and length > PIPE_BUF:
        die("pingpong SIZE must be at most %d" % PIPE_BUF)  # or both pipes fill: deadlock
    if header and (length <= 4 or length - 4 >= 2**32 or n % length):
        die("length mode needs 4 < CHUNK <= 2^32+4 and TOTAL a multiple of CHUNK")
    total = n if bulk else n * length
    tmpl = template(length, not bulk, header)
    ext = tmpl * (READ // length + 2)
    # The seed opens OUT after its first write; opening both before the clock
    # starts keeps open() out of the figures. O_CREAT dropped as in server().
    wf = os.open(in_path, os.O_SYNC | os.O_RDWR)
    rf = os.open(out_path, os.O_RDONLY)
    t0 = time.monotonic_ns()
    if mode == "pingpong":
        for _ in range(n):
            if os.write(wf, tmpl) != length:
                die("short write")
            receive(rf, ext, length, length)
    else:
        writer = threading.Thread(target=sender, args=(wf, tmpl, total), daemon=True)
        writer.start()
        receive(rf, ext, length, total)
        writer.join()
    ns = time.monotonic_ns() - t0
    os.close(wf)
    os.close(rf)
    ops = -(-total // length) if bulk else n
    print(json.dumps({"ops": ops, "bytes": total, "ns": ns}, separators=(",", ":")))


def main(argv):
    if len(argv) == 3 and argv[0] == "server":
        return server(*argv[1:])
    if argv[:1] == ["client"] and (
        (len(argv) == 6 and argv[1] in ("pingpong", "pipelined", "bulk"))
        or (len(argv) == 7 and argv[1] == "bulk" and argv[6] in ("raw", "length"))
    ):
        return client(*argv[1:])
    die("usage: seed_echo.py server IN OUT | seed_echo.py client pingpong|pipelined"
        " IN OUT COUNT SIZE | seed_echo.py client bulk IN OUT TOTAL CHUNK [raw|length]")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except OSError as e:
        die(e)
