"""Workload F's idle clients: one process holding COUNT open, silent sessions.

    python3 bench/idle_sessions.py DIR NAME COUNT

Speaks the session protocol (lib/session/session_protocol.ts) from outside our code, as any client
may: a private 0700 directory DIR/NAME.session-XXXX with the FIFOs `reply` and `alive`
(0600), `alive` held read-write for the process's life, one HELLO record written to
DIR/NAME.ctl in a single write(2). Prints {"ready": COUNT} once every handshake is in, then
sleeps until standard input closes, and removes what it made. A Deno process would stall
near 32 parked FIFO reads; Python's poll() holds a thousand sessions in one process.
"""

import json
import os
import select
import struct
import sys
import tempfile
import time


def main():
    directory, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctl = os.open(f"{directory}/{name}.ctl", os.O_WRONLY | os.O_NONBLOCK)
    sessions = []
    try:
        poller = select.poll()
        waiting = {}
        for _ in range(count):
            path = tempfile.mkdtemp(dir=directory, prefix=f"{name}.session-")
            os.mkfifo(f"{path}/reply", 0o600)
            os.mkfifo(f"{path}/alive", 0o600)
            alive = os.open(f"{path}/alive", os.O_RDWR)
            reply = os.open(f"{path}/reply", os.O_RDONLY | os.O_NONBLOCK)
            sessions.append((path, alive, reply))
            hello = json.dumps({"v": 1, "dir": path, "framing": "lines"}).encode()
            record = struct.pack(">HBBIHH", 0xF1F0, 1, 0, 0, len(hello), 0) + hello
            deadline = time.monotonic() + 30
            while True:
                try:
                    os.write(ctl, record)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.001)
            poller.register(reply, select.POLLIN)
            waiting[reply] = b""
        deadline = time.monotonic() + 60
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} handshakes missing")
            for fd, _ in poller.poll(1000):
                data = os.read(fd, 4096)
                waiting[fd] += data
                if b"\n" in waiting[fd]:
                    answer = json.loads(waiting.pop(fd).split(b"\n")[0])
                    if "error" in answer:
                        raise RuntimeError(answer["error"])
                    poller.unregister(fd)
        print(json.dumps({"ready": count}), flush=True)
        sys.stdin.read()
    finally:
        os.close(ctl)
        for path, alive, reply in sessions:
            os.close(alive)
            os.close(reply)
            for fifo in ("reply", "alive"):
                try:
                    os.unlink(f"{path}/{fifo}")
                except FileNotFoundError:
                    pass
            try:
                os.rmdir(path)
            except OSError:
                pass


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # one line on stderr, exit 1
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
