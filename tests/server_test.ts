/**
 * server.ts end to end: real FIFOs, a real server subprocess, shell and Python peers, real
 * signals. Every test works in a private temp dir and ends by itself.
 *
 * @module
 */
import assert from "node:assert/strict";
import { printable } from "../lib/framing/printable.ts";
import {
  entries,
  flagsFor,
  isFifo,
  projectPath,
  requires,
  runCli,
  serve,
  spawn,
  START_LINE,
  tempDir,
  waitUntil,
  withoutStartLine,
} from "./helpers.ts";

const test = requires("--allow-run");
/** For the tests that drive the server through a Python peer. */
const withPython = requires("--allow-run", "python3");

const enc = (text: string) => new TextEncoder().encode(text);
const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

/**
 * A Python peer of the plain pair, in the seed's order: opens NAME.in for writing, then
 * NAME.out for reading (which waits for the server). A thread writes the pieces (one hex
 * line each on stdin, each one write) and closes its writer; meanwhile everything read
 * until end of file is printed in hex, so no amount of data can deadlock. Pieces after an
 * exit word may find the server gone: they are dropped.
 */
const PY_EXCHANGE = `
import os, sys, threading, time
inp, out = sys.argv[1], sys.argv[2]
read_delay = float(os.environ.get("READ_DELAY", "0"))
pieces = [bytes.fromhex(line) for line in sys.stdin.read().split()]
w = os.open(inp, os.O_WRONLY)
r = os.open(out, os.O_RDONLY)
def send():
    try:
        for piece in pieces:
            data = memoryview(piece)
            while data:
                data = data[os.write(w, data):]
    except BrokenPipeError:
        pass  # the server stopped (exit word) before the last pieces: nothing reads them
    os.close(w)
writer = threading.Thread(target=send)
writer.start()
time.sleep(read_delay)
got = bytearray()
while True:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    got += chunk
writer.join()
sys.stdout.write(got.hex())
`;

/** Sends `pieces` (each one write) and returns the echo. */
async function exchange(
  dir: string,
  pieces: (string | Uint8Array)[],
  name = "pipe",
  readDelay = 0,
): Promise<Uint8Array> {
  await using peer = spawn(
    "python3",
    ["-c", PY_EXCHANGE, `${dir}/${name}.in`, `${dir}/${name}.out`],
    { deadline: 10_000, stdin: "piped", env: { READ_DELAY: String(readDelay / 1000) } },
  );
  await peer.write(pieces.map((p) => hex(typeof p === "string" ? enc(p) : p) + "\n").join(""));
  await peer.closeStdin();
  const { code, stdout, stderr } = await peer.done;
  assert.equal(stderr, "");
  assert.equal(code, 0);
  return new Uint8Array(stdout.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The summary line with its duration blanked out. */
function summary(stdout: string): string {
  return withoutStartLine(stdout).replace(/, \d+\.\d\d s\n$/, ", T s\n");
}

test("server: its first line says where it listens, the framing, and how to stop it", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  for (
    const [args, expected] of [
      [
        [],
        `server: ${dir}/pipe.in -> ${dir}/pipe.out (sessions: ${dir}/pipe.ctl), framing lines; ` +
        'stop: Ctrl-C or the message "exit"\n',
      ],
      [
        ["--no-sessions", "--framing", "length", "--exit-word", ""],
        `server: ${dir}/pipe.in -> ${dir}/pipe.out, framing length; stop: Ctrl-C\n`,
      ],
      [["--quiet"], ""],
    ] as [string[], string][]
  ) {
    await using server = await serve(dir, args);
    server.child.kill("SIGINT");
    const { code, stdout } = await server.done;
    assert.equal(code, 0);
    assert.equal(stdout.slice(0, stdout.indexOf("server stopped")), expected, args.join(" "));
    if (expected) assert.match(stdout, START_LINE);
  }
});

withPython("server: echoes a shell client's lines and logs them, exit word stops it", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await serve(dir);
  assert.deepEqual(entries(dir), [".pipe.keep-*", "pipe.ctl", "pipe.in", "pipe.out"]);
  for (const path of ["pipe.ctl", "pipe.in", "pipe.out"]) {
    assert.equal(Deno.lstatSync(`${dir}/${path}`).mode! & 0o777, 0o600, path);
  }
  // Reader opened before anything is written: the shell holds NAME.out before the echo.
  await using shell = spawn("sh", [
    "-c",
    'exec 3>"$1/pipe.in" 4<"$1/pipe.out"; printf "hello\\nsecond line\\n" >&3; exec 3>&-; cat <&4',
    "sh",
    dir,
  ], { deadline: 10_000 });
  const client = await shell.done;
  assert.equal(client.stdout, "hello\nsecond line\n");
  assert.equal(client.code, 0);
  assert.equal(text(await exchange(dir, ["exit\n"])), "");
  const result = await server.done;
  assert.equal(
    summary(result.stdout),
    "received msg: hello\nreceived msg: second line\nreceived msg: exit\n" +
      "server stopped: 2 messages, 16 bytes, 2 clients (0 in sessions), T s\n",
  );
  assert.equal(result.stderr, "");
  assert.equal(result.code, 0);
  assert.deepEqual(entries(dir), []);
});

{
  withPython(`server: clients one after another, each gets its own echo`, async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await serve(dir, ["--quiet", "--no-sessions"]);
    assert.deepEqual(entries(dir), [".pipe.keep-*", "pipe.in", "pipe.out"]);
    assert.equal(text(await exchange(dir, ["a\n", "b\nc\n"])), "a\nb\nc\n");
    assert.equal(text(await exchange(dir, ["d\n"])), "d\n"); // nothing left over from before
    assert.equal(text(await exchange(dir, ["e", "\n"])), "e\n");
    // Nothing after the exit word is echoed. (Echoes before it: see the end of this file.)
    assert.equal(text(await exchange(dir, ["exit\n", "ignored\n"])), "");
    const result = await server.done;
    assert.equal(
      summary(result.stdout),
      "server stopped: 5 messages, 5 bytes, 4 clients (0 in sessions), T s\n",
    );
    assert.equal(result.code, 0);
    assert.deepEqual(entries(dir), []);
  });
}

withPython(
  "server: the exit word must equal the message; 'exit now' does not stop it",
  async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await serve(dir, ["--quiet"]);
    const almost = "exit now\nexits\n exit\nEXIT\nexit\r\n";
    assert.equal(text(await exchange(dir, [almost])), almost);
    assert.equal(isFifo(`${dir}/pipe.in`), true); // still serving
    assert.equal(text(await exchange(dir, ["exit\n"])), "");
    const result = await server.done;
    assert.equal(result.code, 0);
    assert.equal(
      summary(result.stdout),
      "server stopped: 5 messages, 27 bytes, 2 clients (0 in sessions), T s\n",
    );
    assert.deepEqual(entries(dir), []);
  },
);

withPython("server --exit-word '' never stops on a message; --exit-word bye does", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  {
    await using server = await serve(dir, ["--quiet", "--exit-word", ""]);
    assert.equal(text(await exchange(dir, ["exit\n\n"])), "exit\n\n");
    assert.equal(text(await exchange(dir, ["exit\n"])), "exit\n");
    server.child.kill("SIGTERM");
    const result = await server.done;
    assert.equal(result.code, 0);
    assert.equal(
      summary(result.stdout),
      "server stopped: 3 messages, 8 bytes, 2 clients (0 in sessions), T s\n",
    );
  }
  assert.deepEqual(entries(dir), []);
  {
    await using server = await serve(dir, ["--exit-word", "bye"]);
    assert.equal(text(await exchange(dir, ["exit\n"])), "exit\n");
    assert.equal(text(await exchange(dir, ["bye\nafter\n"])), "");
    const result = await server.done;
    assert.equal(result.code, 0);
    assert.equal(
      summary(result.stdout),
      "received msg: exit\nreceived msg: bye\n" +
        "server stopped: 1 message, 4 bytes, 2 clients (0 in sessions), T s\n",
    );
  }
  assert.deepEqual(entries(dir), []);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  withPython(`server: ${signal} stops it with status 0, a summary and no FIFO left`, async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await serve(dir, ["--quiet"]);
    assert.equal(text(await exchange(dir, ["one\n"])), "one\n");
    server.child.kill(signal);
    const result = await server.done;
    assert.equal(result.code, 0);
    assert.equal(result.signal, null);
    assert.equal(result.stderr, "");
    assert.equal(
      summary(result.stdout),
      "server stopped: 1 message, 3 bytes, 1 client (0 in sessions), T s\n",
    );
    assert.deepEqual(entries(dir), []);
  });
}

test("server: SIGTERM while a client holds the pair open mid-stream", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await serve(dir);
  // The client sends one line, reads its echo, then keeps both ends open until killed.
  await using shell = spawn("sh", [
    "-c",
    'exec 3>"$1/pipe.in" 4<"$1/pipe.out"; echo partial >&3; head -n 1 <&4; exec sleep 30',
    "sh",
    dir,
  ], { deadline: 10_000 });
  await waitUntil(() => shell.stdout() === "partial\n", 5000, "the echo");
  server.child.kill("SIGTERM");
  const result = await server.done;
  assert.equal(result.code, 0);
  assert.equal(
    summary(result.stdout),
    "received msg: partial\nserver stopped: 1 message, 7 bytes, 1 client (0 in sessions), T s\n",
  );
  assert.deepEqual(entries(dir), []);
});

withPython(
  "server: control bytes and invalid UTF-8 are echoed byte-exact and logged escaped",
  async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await serve(dir);
    const nasty = new Uint8Array([
      0xff,
      0xfe,
      0xc3,
      0x28,
      0x00,
      0x80,
      0x1b,
      0x5b,
      0x5c,
      0x09,
      0x0d,
    ]);
    const wire = new Uint8Array([...nasty, 0x0a, ...enc("received msg: forged"), 0x0a]);
    assert.deepEqual(await exchange(dir, [wire]), wire);
    assert.equal(text(await exchange(dir, ["exit\n"])), "");
    const result = await server.done;
    assert.equal(
      summary(result.stdout),
      "received msg: \\xff\\xfe\\xc3(\\x00\\x80\\x1b[\\\\\\t\\r\n" +
        "received msg: received msg: forged\nreceived msg: exit\n" +
        "server stopped: 2 messages, 31 bytes, 2 clients (0 in sessions), T s\n",
    );
    assert.equal(result.code, 0);
  },
);

withPython("server --framing length: every byte value and empty messages, byte-exact", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await serve(dir, ["--framing", "length", "--quiet"]);
  const frame = (payload: Uint8Array) => {
    const out = new Uint8Array(4 + payload.length);
    new DataView(out.buffer).setUint32(0, payload.length);
    out.set(payload, 4);
    return out;
  };
  const all = new Uint8Array(256).map((_, i) => i);
  const stream = new Uint8Array([...frame(all), ...frame(new Uint8Array(0)), ...frame(enc("x"))]);
  // Split mid-header and mid-payload over separate writes.
  assert.deepEqual(
    await exchange(dir, [stream.subarray(0, 2), stream.subarray(2, 100), stream.subarray(100)]),
    stream,
  );
  assert.deepEqual(await exchange(dir, [frame(enc("exit"))]), new Uint8Array(0));
  const result = await server.done;
  assert.equal(result.code, 0);
  assert.equal(
    summary(result.stdout),
    "server stopped: 3 messages, 257 bytes, 2 clients (0 in sessions), T s\n",
  );
});

for (const quiet of [true, false]) {
  withPython(
    `server --framing length${quiet ? " --quiet" : ""}: 200 KiB messages, byte-exact`,
    async () => {
      using tmp = tempDir();
      const dir = tmp.path;
      await using server = await serve(dir, ["--framing", "length", ...(quiet ? ["--quiet"] : [])]);
      const frame = (payload: Uint8Array) => {
        const out = new Uint8Array(4 + payload.length);
        new DataView(out.buffer).setUint32(0, payload.length);
        out.set(payload, 4);
        return out;
      };
      const big = new Uint8Array(200 * 1024).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
      const small = frame(new Uint8Array([1, 2, 3]));
      const stream = new Uint8Array([...frame(big), ...small, ...frame(big.subarray(0, 70_000))]);
      // Pieces that cut headers and payloads at odd places, some larger than a pipe.
      const cuts = [0, 3, 5000, 100_000, 204_801, 204_803, 204_807, 204_812, stream.length];
      const pieces = cuts.slice(1).map((end, i) => stream.subarray(cuts[i], end));
      const echo = await exchange(dir, pieces);
      assert.equal(echo.length, stream.length);
      assert.deepEqual(echo, stream);
      assert.deepEqual(await exchange(dir, [frame(enc("exit"))]), new Uint8Array(0));
      const result = await server.done;
      assert.equal(result.code, 0);
      const log = quiet ? "" : [
        `received msg: ${printable(big)}\n`,
        "received msg: \\x01\\x02\\x03\n",
        `received msg: ${printable(big.subarray(0, 70_000))}\n`,
        "received msg: exit\n",
      ].join("");
      assert.equal(
        summary(result.stdout),
        `${log}server stopped: 3 messages, 274803 bytes, 2 clients (0 in sessions), T s\n`,
      );
    },
  );
}

withPython("server --framing raw: each read is a message; 'exit' alone stops it", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await serve(dir, ["--framing", "raw"]);
  assert.equal(text(await exchange(dir, ["msg 1"])), "msg 1");
  assert.equal(text(await exchange(dir, ["exit\n"])), "exit\n"); // not equal to the word
  assert.equal(text(await exchange(dir, ["exit"])), "");
  const result = await server.done;
  assert.equal(result.code, 0);
  assert.equal(
    summary(result.stdout),
    "received msg: msg 1\nreceived msg: exit\\n\nreceived msg: exit\n" +
      "server stopped: 2 messages, 10 bytes, 3 clients (0 in sessions), T s\n",
  );
});

withPython("server --max-message 16: an oversized message ends that stream only", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await serve(dir, ["--quiet", "--max-message", "16"]);
  const sixteen = "0123456789abcdef";
  // One write: the short line is echoed, the long one ends the stream, the rest is dropped.
  const echo = await exchange(dir, [`${sixteen}\n${"x".repeat(20)}\nafter\n`]);
  assert.equal(text(echo), `${sixteen}\n`);
  // Also when the long line arrives in pieces and the client keeps writing after it.
  assert.equal(
    text(await exchange(dir, ["ok\n", "y".repeat(10), "y".repeat(10), "\nlater\n"])),
    "ok\n",
  );
  // The next client is served normally.
  assert.equal(text(await exchange(dir, ["next\n"])), "next\n");
  assert.equal(text(await exchange(dir, ["exit\n"])), "");
  const result = await server.done;
  assert.equal(result.code, 0);
  assert.equal(
    result.stderr,
    "Dropped a client's stream: Message of 20 bytes or more exceeds the maximum of 16 bytes\n" +
      "Dropped a client's stream: Message of 20 bytes or more exceeds the maximum of 16 bytes\n",
  );
  assert.equal(
    summary(result.stdout),
    "server stopped: 3 messages, 22 bytes, 4 clients (0 in sessions), T s\n",
  );
});

withPython("server: a live server on the same path makes a second one refuse", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using first = await serve(dir, ["--quiet"]);
  const inodes = ["pipe.ctl", "pipe.in", "pipe.out"].map((f) => Deno.lstatSync(`${dir}/${f}`).ino);
  for (const extra of [[], ["--no-sessions"]]) {
    await using second = runCli("server.ts", dir, extra, { deadline: 10_000 });
    const result = await second.done;
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `error: Cannot serve on "${dir}/pipe.in": another server is already serving it\n`,
    );
    assert.equal(result.stdout, "");
  }
  // The first server's FIFOs are untouched and it still serves.
  assert.deepEqual(
    ["pipe.ctl", "pipe.in", "pipe.out"].map((f) => Deno.lstatSync(`${dir}/${f}`).ino),
    inodes,
  );
  assert.equal(text(await exchange(dir, ["still here\n"])), "still here\n");
  assert.equal(text(await exchange(dir, ["exit\n"])), "");
  const result = await first.done;
  assert.equal(result.code, 0);
  assert.deepEqual(entries(dir), []);
});

withPython("server: stale FIFOs of ours (no reader) are replaced and it serves", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  const paths = ["pipe.ctl", "pipe.in", "pipe.out"].map((f) => `${dir}/${f}`);
  const made = await new Deno.Command("mkfifo", { args: ["-m", "600", ...paths] }).output();
  assert.equal(made.code, 0);
  // A second name for each stale FIFO keeps its inode alive, so its number is not reused.
  for (const path of paths) Deno.linkSync(path, `${path}.old`);
  await using server = await serve(dir, ["--quiet"]);
  for (const path of paths) {
    assert.notEqual(Deno.lstatSync(path).ino, Deno.lstatSync(`${path}.old`).ino, path);
    assert.equal(Deno.lstatSync(`${path}.old`).nlink, 1, `${path}: the stale one was unlinked`);
  }
  assert.equal(text(await exchange(dir, ["fresh\n"])), "fresh\n");
  assert.equal(text(await exchange(dir, ["exit\n"])), "");
  const result = await server.done;
  assert.equal(result.code, 0);
  assert.equal(result.stderr, "");
  assert.deepEqual(entries(dir), ["pipe.ctl.old", "pipe.in.old", "pipe.out.old"]);
});

/** Runs a server expected to refuse, and checks it created and removed nothing. */
async function refuses(dir: string, args: string[], stderr: string, flags?: string[]) {
  const before = entries(dir);
  await using server = runCli("server.ts", dir, args, { deadline: 10_000, flags });
  const result = await server.done;
  assert.equal(result.stderr, stderr);
  assert.equal(result.stdout, "");
  assert.equal(result.code, 1);
  assert.deepEqual(entries(dir), before);
}

/** `ln -s`: Deno.symlinkSync needs unscoped permissions. */
async function symlink(target: string, path: string) {
  const made = await new Deno.Command("ln", { args: ["-s", target, path] }).output();
  assert.equal(made.code, 0);
}

async function mkfifo(path: string, mode: string) {
  const made = await new Deno.Command("mkfifo", { args: ["-m", mode, path] }).output();
  assert.equal(made.code, 0);
}

for (const file of ["pipe.in", "pipe.out", "pipe.ctl"]) {
  test(`server: refuses a regular file at ${file} and leaves it untouched`, async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    const path = `${dir}/${file}`;
    Deno.writeTextFileSync(path, "precious data\n");
    Deno.chmodSync(path, 0o600);
    await refuses(
      dir,
      [],
      `error: Cannot create FIFO "${path}": it is a regular file; remove it yourself if it is ` +
        "not needed\n",
    );
    assert.equal(Deno.readTextFileSync(path), "precious data\n");
    assert.deepEqual(entries(dir), [file]);
  });
}

test("server: refuses a directory, symlinks and group-readable FIFOs at its paths", async () => {
  using tmp = tempDir();
  using other = tempDir();
  const dir = tmp.path;
  const path = `${dir}/pipe.in`;
  const message = (reason: string) =>
    `error: Cannot create FIFO "${path}": ${reason}; remove it yourself if it is not needed\n`;

  Deno.mkdirSync(path);
  Deno.writeTextFileSync(`${path}/inside`, "kept");
  await refuses(dir, [], message("it is a directory"));
  assert.equal(Deno.readTextFileSync(`${path}/inside`), "kept");
  Deno.removeSync(path, { recursive: true });

  // A symlink to a FIFO of ours elsewhere: neither the link nor its target is touched.
  const target = `${other.path}/target`;
  await mkfifo(target, "600");
  await symlink(target, path);
  await refuses(dir, [], message("it is a symlink"));
  assert.equal(Deno.readLinkSync(path), target);
  assert.equal(isFifo(target), true);
  Deno.removeSync(path);

  await symlink(`${other.path}/missing`, path);
  await refuses(dir, [], message("it is a symlink"));
  assert.equal(Deno.readLinkSync(path), `${other.path}/missing`);
  assert.deepEqual(entries(other.path), ["target"]);
  Deno.removeSync(path);

  for (const mode of ["644", "660", "606"]) {
    await mkfifo(path, mode);
    const ino = Deno.lstatSync(path).ino;
    await refuses(dir, [], message(`its mode 0${mode} lets other users in (expected 0600)`));
    const after = Deno.lstatSync(path);
    assert.equal(after.ino, ino);
    assert.equal(after.mode! & 0o777, parseInt(mode, 8));
    Deno.removeSync(path);
  }
  assert.deepEqual(entries(dir), []);
});

const isRoot = (() => {
  using probe = tempDir();
  return Deno.statSync(probe.path).uid === 0;
})();

test({
  name: "server: refuses a FIFO owned by another user",
  ignore: !isRoot, // only root can make a FIFO belong to someone else
  async fn() {
    using tmp = tempDir();
    const dir = tmp.path;
    const path = `${dir}/pipe.out`;
    await mkfifo(path, "600");
    Deno.chownSync(path, 4242, 4242);
    await refuses(
      dir,
      [],
      `error: Cannot create FIFO "${path}": it is owned by uid 4242, not 0; remove it ` +
        "yourself if it is not needed\n",
    );
    assert.equal(Deno.lstatSync(path).uid, 4242);
    assert.deepEqual(entries(dir), ["pipe.out"]);
  },
});

test("server: refuses a --dir that is a symlink, or missing, or a file", async () => {
  using tmp = tempDir();
  using real = tempDir();
  const link = `${tmp.path}/link`;
  await symlink(real.path, link);
  const flags = flagsFor("server.ts", `${tmp.path},${real.path}`);
  await refuses(
    tmp.path,
    ["--dir", link],
    `error: Cannot use directory "${link}": it is a symlink\n`,
    flags,
  );
  assert.deepEqual(entries(real.path), []);
  assert.equal(Deno.readLinkSync(link), real.path);
  const missing = `${tmp.path}/missing`;
  await refuses(
    tmp.path,
    ["--dir", missing],
    `error: Cannot use directory "${missing}": it does not exist\n`,
    flags,
  );
  const file = `${tmp.path}/file`;
  Deno.writeTextFileSync(file, "x");
  await refuses(
    tmp.path,
    ["--dir", file],
    `error: Cannot use directory "${file}": it is not a directory\n`,
    flags,
  );
  assert.deepEqual(entries(tmp.path), ["file", "link"]);
});

test("server: usage errors exit 2 and create nothing", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  const usage = 'Run "server.ts --help" for usage.\n';
  const cases: [string[], string][] = [
    [["--bogus"], "error: Unknown option '--bogus'"],
    [
      ["--framing", "bogus"],
      'error: Invalid --framing "bogus": expected one of lines, length, raw',
    ],
    [
      ["--max-message", "0"],
      'error: Invalid --max-message "0": expected a whole number from 1 to 2147483647',
    ],
    [
      ["--max-message=-1"],
      'error: Invalid --max-message "-1": expected a whole number from 1 to 2147483647',
    ],
    [
      ["--max-message", "abc"],
      'error: Invalid --max-message "abc": expected a whole number from 1 to 2147483647',
    ],
    [
      ["--max-message", "2147483648"],
      'error: Invalid --max-message "2147483648": expected a whole number from 1 to 2147483647',
    ],
    [["--engine", "fast"], "error: Unknown option '--engine'"],
    [["--name", "../x"], 'error: Invalid --name "../x": use letters, digits, ".", "_" and "-"'],
    [
      ["stray"],
      "error: Unexpected argument 'stray'. This command does not take positional arguments",
    ],
    [["--exit-word", "a\nb"], 'error: Invalid --exit-word "a\\nb": it cannot contain a newline'],
  ];
  for (const [args, message] of cases) {
    await using server = runCli("server.ts", dir, args, { deadline: 10_000 });
    const result = await server.done;
    assert.equal(result.stderr, `${message}\n${usage}`, args.join(" "));
    assert.equal(result.code, 2, args.join(" "));
    assert.equal(result.stdout, "");
    assert.deepEqual(entries(dir), [], args.join(" "));
  }
  // "--max-message -1": the value looks like a flag; still a usage error, still nothing made.
  await using server = runCli("server.ts", dir, ["--max-message", "-1"], { deadline: 10_000 });
  const result = await server.done;
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^error: Option '--max-message' argument is ambiguous/);
  assert.deepEqual(entries(dir), []);
});

test("server: a --dir outside the granted paths prints Deno's error and a hint", async () => {
  using granted = tempDir();
  using outside = tempDir();
  const dir = outside.path;
  await refuses(
    granted.path,
    ["--dir", dir],
    `error: Requires read access to "${dir}", run again with the --allow-read flag\n` +
      `hint: add --allow-read=${dir} --allow-write=${dir}\n`,
  );
  assert.deepEqual(entries(dir), []);
  // Without --allow-run=mkfifo: the error names it, and nothing is left behind.
  await refuses(
    granted.path,
    [],
    `error: Cannot serve in "${granted.path}": making FIFOs needs run access to "mkfifo"; ` +
      "run Deno with --allow-run=mkfifo\n",
    [`--allow-read=${granted.path},${projectPath("lib")}`, `--allow-write=${granted.path}`],
  );
  assert.deepEqual(entries(granted.path), []);
});

// Regression: the input has a reader for the server's whole life (the anchor), so a client
// could open NAME.in, write and leave before the engine parked in its blocking open; Linux
// wakes that open only when the next writer arrives, so `printf 'exit\n' > pipe.in` right
// after start-up was neither read nor obeyed until another client came.
test({
  name: "server: a one-shot writer right after start-up is served (not stranded)",
  async fn() {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = runCli("server.ts", dir, ["--quiet"], { deadline: 15_000 });
    await waitTightly(() => isFifo(`${dir}/pipe.ctl`), "pipe.ctl");
    // Freeze the server before its engine parks; the write then lands on the anchor alone.
    server.child.kill("SIGSTOP");
    try {
      await using writer = spawn("sh", ["-c", 'printf "exit\\n" > "$1/pipe.in"', "sh", dir], {
        deadline: 5000,
      });
      // The anchor is usually open already; if not, the writer waits for it after SIGCONT.
      await within(writer.done, 300, undefined);
      server.child.kill("SIGCONT");
      assert.equal((await writer.done).code, 0);
    } finally {
      server.child.kill("SIGCONT");
    }
    const stopped = await within(server.done.then((r) => r.code), 3000, "still running");
    assert.equal(stopped, 0);
  },
});

/** Settles like `promise`, or with `late` after `ms` (the timer is cleared either way). */
async function within<T, U>(promise: Promise<T>, ms: number, late: U): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<U>((r) => timer = setTimeout(() => r(late), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every millisecond (waitUntil's 10 ms is too coarse for start-up races). */
async function waitTightly(check: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !check();) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

// Regression: serveEcho() used to subscribe to its abort signal only on its last line; a
// SIGINT/SIGTERM during start-up aborted the controller before anyone listened, and every
// later signal was a no-op abort(): the server ran on until SIGKILL, FIFOs left behind.
test({
  name: "server: SIGTERM during start-up still stops it, FIFOs removed",
  async fn() {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = runCli("server.ts", dir, [], { deadline: 15_000 });
    await waitTightly(() => isFifo(`${dir}/pipe.in`), "pipe.in");
    server.child.kill("SIGTERM");
    const stopped = await within(server.done.then((r) => r.code), 3000, "still running");
    assert.equal(stopped, 0);
    assert.deepEqual(entries(dir), []);
  },
});

// Regression: PlainEngine.stop() used to wake the loop at once and drain NAME.out, stealing
// the echoes written just before the exit word from a client that had not read them yet.
{
  withPython({
    name: `server: echoes before the exit word reach a client that reads late`,
    async fn() {
      using tmp = tempDir();
      const dir = tmp.path;
      await using server = await serve(dir, ["--quiet"]);
      assert.equal(text(await exchange(dir, ["a\nb\nexit\n"], "pipe", 500)), "a\nb\n");
      assert.equal((await server.done).code, 0);
    },
  });
}

// Regression: between two plain clients the input loop let the next writer in before the
// output had closed NAME.out on the last one, and held NAME.in open after its end of file
// while it finished. Back-to-back clients from one process then got another client's echo,
// lost theirs ("No reader" on the server), or hung in open(NAME.out) for good (every run
// of this test, before). What is left is the FIFO's own race: a writer that opens NAME.in
// in the instant between our end of file and our close finds no reader when it writes
// (EPIPE), or reads the last client's end of file or another's echo: up to 2% of clients
// with no gap at all here, hence the bound.
test({
  name: "server: 1,000 plain clients back to back: no hang, at most the FIFO's own race",
  async fn() {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await serve(dir, ["--quiet"]);
    await using driver = spawn(Deno.execPath(), [
      "run",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      projectPath("tests/back_to_back_client.ts"),
      dir,
      "1000",
    ], { deadline: 30_000 });
    const { code, stdout, stderr } = await driver.done;
    assert.equal(code, 0, `the clients hung or failed: ${stderr}`);
    const result = JSON.parse(stdout);
    assert.ok(result.ok >= 900, stdout); // before: 68% when it did not hang
    server.child.kill("SIGTERM");
    // Replies are dropped only for a client that the race left without its reader.
    const { stderr: log } = await server.done;
    const dropped = (log.match(/No reader/g) ?? []).length;
    assert.ok(dropped <= result.eof + result.other, `${stdout}\n${log}`);
  },
});
