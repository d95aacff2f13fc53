/**
 * The plain pair against peers this project did not write, in every order they act:
 * `sh` with `cat`, `head`, `echo` and `printf`; Python's `os` and
 * `multiprocessing.connection`; the seed's two programs under umask 022; a C client.
 *
 * The server runs exactly as the README says: `--allow-read=/tmp --allow-write=/tmp
 * --allow-run=mkfifo`, from a directory that is not the project's.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  entries,
  isFifo,
  plainPairIdle,
  plainRoundTrip,
  projectPath,
  requires,
  runCli,
  serve,
  spawn,
  tempDir,
  waitUntil,
} from "./helpers.ts";

/** The card's permissions, as the README gives them. */
const CARD = ["--allow-read=/tmp", "--allow-write=/tmp", "--allow-run=mkfifo"];
const MAX = 1 << 20;

/** Starts server.ts with the card's permissions from `cwd`, serving in `dir`. */
function cardServer(dir: string, cwd: string, args: string[] = []) {
  return serve(dir, ["--quiet", ...args], { flags: CARD, cwd });
}

/** Stops a server with SIGTERM and checks it left nothing behind. */
async function stop(server: Awaited<ReturnType<typeof cardServer>>, dir: string) {
  server.child.kill("SIGTERM");
  const result = await server.done;
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(entries(dir), []);
  return result;
}

/**
 * Shell helpers: `parked PID` waits until PID waits on its FIFO, in open() for its peer or
 * in read() for data (an observable state, `/proc/PID/wchan`), never for a fixed time.
 */
const SH_PRELUDE = `
set -e
D="$1"
parked() {
  until case "$(cat /proc/$1/wchan 2>/dev/null)" in wait_for_partner|*pipe_read) true;; *) false;; esac
  do sleep 0.01; done
}
`;

interface ShellCase {
  name: string;
  script: string;
  expected: string;
  /** The server's log, `$D` standing for its directory. */
  log?: string;
  /** Or a pattern the log must match, where a count varies from run to run. */
  logPattern?: string;
}

const SHELL_CASES: ShellCase[] = [
  {
    name: "reader first: cat waits on pipe.out, then echo writes",
    script: `cat "$D/pipe.out" > "$D/got" & r=$!; parked $r; echo hi > "$D/pipe.in"; wait $r`,
    expected: "hi\n",
  },
  {
    name: "the README's recipe: cat waits 1.5 s before echo writes",
    script:
      `cat "$D/pipe.out" > "$D/got" & r=$!; sleep 1.5; echo 'hello from the shell' > "$D/pipe.in"; wait $r`,
    expected: "hello from the shell\n",
  },
  {
    name: "a reader that waits 3 s before the first write",
    script:
      `cat "$D/pipe.out" > "$D/got" & r=$!; parked $r; sleep 3; printf 'a\\nb\\n' > "$D/pipe.in"; wait $r`,
    expected: "a\nb\n",
  },
  {
    name: "writer first: it writes, then cat opens while it is still there",
    script: `{ echo hi; read -r go < "$D/go"; } > "$D/pipe.in" & w=$!
      cat "$D/pipe.out" > "$D/got" & r=$!; echo > "$D/go"; wait $w; wait $r`,
    expected: "hi\n",
  },
  {
    name: "a writer that leaves before any reader comes takes its reply with it",
    script: `echo gone > "$D/pipe.in"; : > "$D/got"`,
    expected: "",
    log: 'No reader on "$D/pipe.out": dropped 5 bytes of replies\n',
  },
  {
    name: "head takes two lines of three and leaves",
    script:
      `head -n 2 "$D/pipe.out" > "$D/got" & r=$!; parked $r; printf 'a\\nb\\nc\\n' > "$D/pipe.in"; wait $r`,
    expected: "a\nb\n",
  },
  {
    name: "head takes 10 bytes of 3 MB and leaves: the rest is dropped, one log line, no stall",
    script: `head -c 10 "$D/pipe.out" > "$D/got" & r=$!; parked $r
      yes 0123456789abcdefghi | head -c 3000000 > "$D/pipe.in"; wait $r`,
    expected: "0123456789",
    logPattern: '^No reader on "$D/pipe.out": dropped \\d+ bytes of replies\n$',
  },
  {
    name: "printf: a last line without a newline comes back as sent",
    script:
      `cat "$D/pipe.out" > "$D/got" & r=$!; parked $r; printf 'first\\nlast' > "$D/pipe.in"; wait $r`,
    expected: "first\nlast",
  },
  {
    name: "a reader that arrives after the first message, from another process",
    script: `{ echo one; read -r go < "$D/go"; echo two; } > "$D/pipe.in" & w=$!
      cat "$D/pipe.out" > "$D/got" & r=$!; parked $r; echo > "$D/go"; wait $w; wait $r`,
    expected: "one\ntwo\n",
  },
];

const withShell = requires("--allow-run");
for (const { name, script, expected, log = "", logPattern } of SHELL_CASES) {
  withShell(`peers (sh): ${name}`, async () => {
    using tmp = tempDir();
    using cwd = tempDir("fifo-cwd-");
    const dir = tmp.path;
    if (script.includes("$D/go")) {
      // `go` holds the writer back until the test lets it on: a regular file would not.
      assert.equal((await new Deno.Command("mkfifo", { args: [`${dir}/go`] }).output()).code, 0);
    }
    await using server = await cardServer(dir, cwd.path);
    await using shell = spawn("sh", ["-c", SH_PRELUDE + script, "sh", dir], { deadline: 15_000 });
    const result = await shell.done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Deno.readTextFileSync(`${dir}/got`), expected);
    // The server is still well and serves the next client on a clean stream, once it has
    // let go of this one (a reader that came sooner would be this client's).
    await plainPairIdle(server.child.pid, "the server to let go of the client");
    const next = await (spawn("sh", [
      "-c",
      SH_PRELUDE + `cat "$D/pipe.out" & r=$!; parked $r; echo next > "$D/pipe.in"; wait $r`,
      "sh",
      dir,
    ], { deadline: 10_000 })).done;
    assert.equal(next.stdout, "next\n");
    Deno.removeSync(`${dir}/got`);
    if (script.includes("$D/go")) Deno.removeSync(`${dir}/go`);
    const stopped = await stop(server, dir);
    if (logPattern) assert.match(stopped.stderr, new RegExp(logPattern.replaceAll("$D", dir)));
    else assert.equal(stopped.stderr, log.replaceAll("$D", dir));
  });
}

const withPython = requires("--allow-run", "python3");
/** Single-threaded Python peers (tests/fixtures/peer_python.py): a whole message, then its echo. */
const PYTHON_PEERS = [
  ...["lines", "length", "raw"].map((framing) => ({
    name: `peers (python os): one ${MAX}-byte message, written whole before reading, ${framing}`,
    framing,
    args: ["os", framing],
    size: MAX,
    said: `ok ${framing} ${MAX}\n`,
  })),
  {
    name: "peers (python multiprocessing.connection): send_bytes of 1,000,000 bytes, then " +
      "recv_bytes, one thread",
    framing: "length",
    args: ["mp"],
    size: 1_000_000,
    said: "ok mp 1000000\n",
  },
];
for (const { name, framing, args, size, said } of PYTHON_PEERS) {
  withPython(name, async () => {
    using tmp = tempDir();
    using cwd = tempDir("fifo-cwd-");
    const dir = tmp.path;
    await using server = await cardServer(dir, cwd.path, ["--framing", framing]);
    const peer = await spawn("python3", [
      projectPath("tests/fixtures/peer_python.py"),
      ...args,
      `${dir}/pipe.in`,
      `${dir}/pipe.out`,
      String(size),
    ], { deadline: 20_000 }).done;
    assert.equal(peer.stderr, "");
    assert.equal(peer.stdout, said);
    assert.equal((await stop(server, dir)).stderr, "");
  });
}

withPython(
  "peers (python os): a client that writes on and never reads is dropped at the bound, alone",
  async () => {
    using tmp = tempDir();
    using cwd = tempDir("fifo-cwd-");
    const dir = tmp.path;
    await using server = await cardServer(dir, cwd.path, ["--max-message", "1024"]);
    // Line after line, never reading: once the pipes and the bound (max-message + 64 KiB)
    // are full, it blocks writing; the server drops it and reads its input to the end.
    const flood = await spawn("python3", [
      "-c",
      `import os, sys
w = os.open(sys.argv[1], os.O_WRONLY)
r = os.open(sys.argv[2], os.O_RDONLY)
line = b"x" * 99 + b"\\n"
for _ in range(20000):
    os.write(w, line)
print("wrote everything")`,
      `${dir}/pipe.in`,
      `${dir}/pipe.out`,
    ], { deadline: 30_000 }).done;
    assert.equal(flood.stdout, "wrote everything\n", flood.stderr);
    await plainPairIdle(server.child.pid, "the server to drain the flood"); // else they share
    assert.equal(await plainRoundTrip(dir, "next"), "next\n");
    const result = await stop(server, dir);
    assert.match(
      result.stderr,
      /^Dropped a client's stream: its reader took none of the \d+ bytes of replies held for it \(at most 66560\) for 2 s\n$/,
    );
  },
);

/** The seed's server as published: umask 022, so its FIFOs are 0644. */
function seedServer(dir: string) {
  return spawn("sh", [
    "-c",
    'umask 022; exec python3 "$1" "$2/pipe.in" "$2/pipe.out"',
    "sh",
    projectPath("tests/fixtures/seed_server.py"),
    dir,
  ], { env: { SEED_EOF_SLEEP: "0.05" }, deadline: 20_000 });
}

withPython("peers (seed's server, umask 022): client.ts works and warns who can read", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = seedServer(dir);
  // The seed prints nothing when ready: wait for both FIFOs.
  await waitUntil(() => isFifo(`${dir}/pipe.in`) && isFifo(`${dir}/pipe.out`), 10_000);
  assert.equal(Deno.lstatSync(`${dir}/pipe.in`).mode! & 0o777, 0o644);
  const client = await runCli("client.ts", dir, ["--count", "3", "--interval", "0"], {
    flags: CARD,
    deadline: 15_000,
  }).done;
  assert.equal(
    client.stderr,
    `warning: FIFOs "${dir}/pipe.in" (0644) and "${dir}/pipe.out" (0644) can be read by ` +
      "its group and all other users\n",
  );
  assert.equal(
    client.stdout,
    "sent msg: msg 1\nreceived msg: msg 1\nsent msg: msg 2\nreceived msg: msg 2\n" +
      "sent msg: msg 3\nreceived msg: msg 3\n",
  );
  assert.equal(client.code, 0);
  assert.equal((await server.done).code, 0, "the exit word stopped the seed's server");
});

withPython(
  "peers (seed's server, umask 022): client.ts --strict refuses it, untouched",
  async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    await using _server = seedServer(dir);
    await waitUntil(() => isFifo(`${dir}/pipe.in`) && isFifo(`${dir}/pipe.out`), 10_000);
    const before = Deno.lstatSync(`${dir}/pipe.in`);
    const client = await runCli("client.ts", dir, ["--strict", "--send", "x"], {
      flags: CARD,
      deadline: 15_000,
    }).done;
    assert.equal(
      client.stderr,
      `error: Cannot use FIFO "${dir}/pipe.in": its mode 0644 lets other users in (expected 0600)\n`,
    );
    assert.equal(client.code, 1);
    const after = Deno.lstatSync(`${dir}/pipe.in`);
    assert.deepEqual([after.ino, after.mode, after.mtime], [before.ino, before.mode, before.mtime]);
  },
);

withPython("peers (seed's client, umask 022): ten messages through server.ts", async () => {
  using tmp = tempDir();
  using cwd = tempDir("fifo-cwd-");
  const dir = tmp.path;
  await using server = await cardServer(dir, cwd.path, ["--framing", "raw"]);
  const client = await spawn("sh", [
    "-c",
    'umask 022; exec python3 "$1" "$2/pipe.in" "$2/pipe.out"',
    "sh",
    projectPath("tests/fixtures/seed_client.py"),
    dir,
  ], { env: { SEED_INTERVAL: "0" }, deadline: 15_000 }).done;
  assert.equal(client.stderr, "");
  const expected = Array.from(
    { length: 10 },
    (_, i) => `sent msg: msg ${i + 1}\nreceived msg: msg ${i + 1}\n`,
  ).join("");
  assert.equal(client.stdout, expected);
  const result = await server.done; // the seed's client ends with the exit word
  assert.equal(result.code, 0);
  assert.equal(result.stderr, "");
  assert.deepEqual(entries(dir), []);
});

const withC = requires("--allow-run", "cc");
withC(
  "peers (C): one thread, the largest line written whole, then read; 200 round trips",
  async () => {
    using tmp = tempDir();
    using cwd = tempDir("fifo-cwd-");
    const dir = tmp.path;
    const binary = `${cwd.path}/peer_client`;
    const built = await spawn("cc", [
      "-O2",
      "-o",
      binary,
      projectPath("tests/fixtures/peer_client.c"),
    ])
      .done;
    assert.equal(built.code, 0, built.stderr);
    await using server = await cardServer(dir, cwd.path);
    for (const [bytes, rounds] of [[MAX + 1, 3], [100, 200]]) {
      const peer = await spawn(binary, [
        `${dir}/pipe.in`,
        `${dir}/pipe.out`,
        String(bytes),
        String(rounds),
      ], {
        deadline: 20_000,
      }).done;
      assert.equal(peer.stderr, "");
      assert.equal(peer.stdout, `ok ${rounds} ${bytes}\n`);
    }
    assert.equal((await stop(server, dir)).stderr, "");
  },
);
