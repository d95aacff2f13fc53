/**
 * client.ts end to end against a real server.ts subprocess over real FIFOs: its modes, its
 * exact output, and how it fails (no server, a stale FIFO, a server that stops answering).
 *
 * @module
 */
import assert from "node:assert/strict";
import { isServed } from "../lib/fifo/fifo_file.ts";
import {
  entries,
  type Proc,
  projectPath,
  requires,
  runCli,
  spawn,
  startServer,
  tempDir,
  waitUntil,
  withoutStartLine,
} from "./helpers.ts";

const test = requires("--allow-run");

/** Runs client.ts to completion. */
async function client(dir: string, args: string[], input?: string) {
  await using proc = runCli("client.ts", dir, args, {
    deadline: 15_000,
    stdin: input === undefined ? "null" : "piped",
  });
  if (input !== undefined) {
    // Written while the client runs: its replies are collected meanwhile.
    await proc.write(input);
    await proc.closeStdin();
  }
  return await proc.done;
}

function summary(stdout: string): string {
  return withoutStartLine(stdout).replace(/, \d+\.\d\d s\n$/, ", T s\n");
}

function defaultOutput(count: number): string {
  let out = "";
  for (let i = 1; i <= count; i++) out += `sent msg: msg ${i}\nreceived msg: msg ${i}\n`;
  return out;
}

for (const mode of ["session", "shared"] as const) {
  test(`client (${mode}): default mode prints each message and echo, then stops the server`, async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await startServer(dir);
    const extra = mode === "shared" ? ["--shared"] : [];
    const result = await client(dir, ["--count", "3", "--interval", "0", ...extra]);
    assert.equal(result.stderr, "");
    assert.equal(result.stdout, defaultOutput(3));
    assert.equal(result.code, 0);
    const stopped = await server.done;
    assert.equal(stopped.code, 0);
    const clients = mode === "session" ? "1 client (1 in sessions)" : "1 client (0 in sessions)";
    assert.equal(
      summary(stopped.stdout),
      `server stopped: 3 messages, 15 bytes, ${clients}, T s\n`,
    );
    assert.deepEqual(entries(dir), []);
  });
}

test("client: --no-exit leaves the server running; --exit-word and --interval", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir, ["--exit-word", "bye"]);
  const first = await client(dir, ["--count", "2", "--interval", "0", "--no-exit"]);
  assert.equal(first.stdout, defaultOutput(2));
  assert.equal(first.code, 0);
  assert.equal(isServed(`${dir}/pipe.ctl`, Deno.statSync(dir).uid!), true);
  // Sending "exit" does not stop a server whose word is "bye"; --exit-word bye does.
  const second = await client(dir, ["--count", "1", "--interval", "0"]);
  assert.equal(second.stdout, defaultOutput(1));
  const third = await client(dir, ["--count", "2", "--interval", "20", "--exit-word", "bye"]);
  assert.equal(third.stdout, defaultOutput(2));
  assert.equal(third.code, 0);
  const stopped = await server.done;
  assert.equal(stopped.code, 0);
  // "exit" came as an ordinary message: echoed and counted.
  assert.equal(
    summary(stopped.stdout),
    "server stopped: 6 messages, 29 bytes, 3 clients (3 in sessions), T s\n",
  );
  assert.deepEqual(entries(dir), []);
});

test("client: --count 0 sends only the exit word", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir);
  const result = await client(dir, ["--count", "0"]);
  assert.equal(result.stdout, "");
  assert.equal(result.code, 0);
  assert.equal((await server.done).code, 0);
});

test("client --send: prints only the reply, byte for byte, in every framing", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  for (const framing of ["lines", "length", "raw"]) {
    {
      await using server = await startServer(dir, ["--framing", framing]);
      for (const text of ["héllo wörld ✓", "a\tb\x1b[0m", "exit now"]) {
        const result = await client(dir, ["--framing", framing, "--send", text]);
        assert.equal(result.stderr, "", `${framing}: ${text}`);
        assert.equal(result.stdout, `${text}\n`, `${framing}: ${text}`);
        assert.equal(result.code, 0);
      }
      if (framing === "length") {
        // Only length framing can carry a multi-line message and an empty one.
        for (const text of ["two\nlines", ""]) {
          const result = await client(dir, ["--framing", framing, "--send", text]);
          assert.equal(result.stdout, `${text}\n`);
          assert.equal(result.code, 0);
        }
      }
      // The exit word has no echo: it stops the server, prints nothing and is not an error.
      const exit = await client(dir, ["--framing", framing, "--send", "exit"]);
      assert.deepEqual([exit.code, exit.stdout, exit.stderr], [0, "", ""], framing);
      const stopped = await server.done;
      assert.equal(stopped.code, 0, framing);
    }
    assert.deepEqual(entries(dir), [], framing);
  }
});

// Regression: connectSession() used to send HELLO before parking its blocking open of the
// reply FIFO; a refusal written and closed before that open made the client wait for a
// writer that never came, and report a timeout ("after undefined ms") instead.
test("client --send: a framing mismatch is always reported as the server's refusal", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir, ["--framing", "length"]);
  for (let i = 0; i < 5; i++) {
    const result = await client(dir, ["--timeout", "1000", "--send", "hi"]);
    assert.equal(
      result.stderr,
      'error: The server refused the session: framing mismatch: the server uses "length", ' +
        'the client "lines"\n',
      `attempt ${i + 1}`,
    );
    assert.equal(result.stdout, "");
    assert.equal(result.code, 1);
  }
  server.child.kill("SIGTERM");
  const stopped = await server.done;
  assert.equal(stopped.code, 0);
  const refusal =
    /^Refused a session for "[^"]+\/pipe\.session-[0-9a-f]+": framing mismatch: the server uses "length", the client "lines"$/;
  const lines = stopped.stderr.split("\n");
  assert.equal(lines.pop(), "");
  assert.equal(lines.length, 5);
  for (const line of lines) assert.match(line, refusal);
  assert.deepEqual(entries(dir), []);
});

test("client --send: a reply longer than --max-message is an error", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir);
  const result = await client(dir, ["--max-message", "10", "--send", "y".repeat(11)]);
  assert.equal(
    result.stderr,
    "error: Message of 11 bytes or more exceeds the maximum of 10 bytes\n",
  );
  assert.equal(result.stdout, "");
  assert.equal(result.code, 1);
  const ok = await client(dir, ["--max-message", "10", "--send", "y".repeat(10)]);
  assert.equal(ok.stdout, `${"y".repeat(10)}\n`);
  server.child.kill("SIGTERM");
  assert.equal((await server.done).code, 0);
  assert.deepEqual(entries(dir), []);
});

test("client (plain pair): a lines client against a length server hears the likely cause", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir, ["--framing", "length", "--no-sessions"]);
  const result = await client(dir, ["--send", "hello"]);
  assert.equal(
    result.stderr,
    "error: The server closed the connection (its log says why: often a message over its " +
      '--max-message, or a --framing other than "lines")\n',
  );
  assert.equal(result.code, 1);
  server.child.kill("SIGTERM");
  const stopped = await server.done;
  // The server's log names the mismatch: its "length header" is the text "hell".
  assert.match(
    stopped.stderr,
    /^Dropped a client's stream: .*the header reads "hell" as text: is the peer using lines framing\?\n$/,
  );
  assert.equal(stopped.code, 0);
});

test("client (session): a message over the server's --max-message ends only that session", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir, ["--max-message", "16"]);
  const result = await client(dir, ["--send", "x".repeat(20)]);
  // The session is told why before it ends.
  assert.match(
    result.stderr,
    /^error: The server closed the connection: Dropped session \d+: Message of 20 bytes or more exceeds the maximum of 16 bytes\n$/,
  );
  assert.equal(result.stdout, "");
  assert.equal(result.code, 1);
  const next = await client(dir, ["--send", "y".repeat(16)]);
  assert.equal(next.stdout, `${"y".repeat(16)}\n`);
  assert.equal(next.code, 0);
  server.child.kill("SIGTERM");
  const stopped = await server.done;
  assert.match(
    stopped.stderr,
    /^Dropped session \d+: Message of 20 bytes or more exceeds the maximum of 16 bytes\n$/,
  );
  assert.equal(stopped.code, 0);
  assert.equal(
    summary(stopped.stdout),
    "server stopped: 1 message, 16 bytes, 2 clients (2 in sessions), T s\n",
  );
  assert.deepEqual(entries(dir), []);
});

test("client (session): the server stopping mid-run is exit 1, nothing left behind", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir);
  await using proc = runCli("client.ts", dir, ["--count", "5", "--interval", "300"], {
    deadline: 15_000,
  });
  await echoed(proc);
  server.child.kill("SIGTERM");
  assert.equal((await server.done).code, 0);
  const result = await proc.done;
  assert.match(
    result.stderr,
    /^error: (Cannot write FIFO "[^"]+\/pipe\.ctl": no reader|The server closed the connection)\n$/,
  );
  assert.equal(result.code, 1);
  assert.deepEqual(entries(dir), []);
});

/** 20,000 lines, 2.2 MB: more than both pipes and the session window hold at once. */
const LARGE_INPUT = Array.from(
  { length: 20_000 },
  (_, i) => `line ${String(i).padStart(5, "0")} ${"xé✓"[i % 3].repeat(i % 200)}`,
).join("\n") + "\n";

for (const mode of ["session", "shared"] as const) {
  test(`client --stdin (${mode}): 20,000 lines, over 2 MiB, all echoed in order`, async () => {
    assert.ok(new TextEncoder().encode(LARGE_INPUT).length > 2 * 1024 * 1024);
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await startServer(dir);
    const extra = mode === "shared" ? ["--shared"] : [];
    const result = await client(dir, ["--stdin", ...extra], LARGE_INPUT);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(result.stdout.length, LARGE_INPUT.length);
    assert.ok(result.stdout === LARGE_INPUT, "the echo differs from the input");
    server.child.kill("SIGTERM");
    const stopped = await server.done;
    assert.equal(stopped.code, 0);
    const bytes = new TextEncoder().encode(LARGE_INPUT).length - 20_000;
    const clients = mode === "session" ? "1 client (1 in sessions)" : "1 client (0 in sessions)";
    assert.equal(
      summary(stopped.stdout),
      `server stopped: 20000 messages, ${bytes} bytes, ${clients}, T s\n`,
    );
  });
}

test("client --stdin: a last line without \\n, empty lines, and no input at all", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir);
  // A filter: the last line comes back as it went, without a "\n" added.
  const result = await client(dir, ["--stdin"], "a\n\nb\nlast");
  assert.equal(result.stdout, "a\n\nb\nlast");
  assert.equal(result.code, 0);
  const empty = await client(dir, ["--stdin"], "");
  assert.equal(empty.stdout, "");
  assert.equal(empty.stderr, "");
  assert.equal(empty.code, 0);
  server.child.kill("SIGTERM");
  assert.equal((await server.done).code, 0);
});

for (const mode of ["session", "shared"] as const) {
  test(`client --stdin (${mode}): a filter, byte-exact for any bytes, in every framing`, async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    // Every byte value but "\n" (invalid UTF-8, NUL, "\r"), lines of every length up to
    // 70 KiB (more than a pipe holds), empty lines, and a last line without "\n".
    const parts: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const length = i === 1500 ? 70_000 : (i * 37) % 300;
      for (let j = 0; j < length; j++) {
        parts.push((i + j * 7) % 256 === 10 ? 0xff : (i + j * 7) % 256);
      }
      parts.push(10);
    }
    parts.push(0xff, 0xfe, 0x00, 0x0d);
    const input = new Uint8Array(parts);
    Deno.writeFileSync(`${dir}/input`, input);
    for (const framing of ["lines", "length", "raw"]) {
      await using server = await startServer(dir, ["--framing", framing]);
      const extra = mode === "shared" ? ["--shared"] : [];
      // A shell redirects both ends: the client's stdin and stdout are files, not our pipes.
      await using proc = spawn("sh", [
        "-c",
        `exec "$@" <"${dir}/input" >"${dir}/output"`,
        "sh",
        Deno.execPath(),
        "run",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        "--allow-run=mkfifo",
        projectPath("client.ts"),
        "--dir",
        dir,
        "--framing",
        framing,
        "--stdin",
        ...extra,
      ], { deadline: 15_000 });
      const result = await proc.done;
      assert.equal(result.stderr, "", framing);
      assert.equal(result.code, 0, framing);
      const output = Deno.readFileSync(`${dir}/output`);
      assert.equal(output.length, input.length, framing);
      assert.ok(output.every((byte, i) => byte === input[i]), `${framing}: the echo differs`);
      server.child.kill("SIGTERM");
      assert.equal((await server.done).code, 0);
    }
  });
}

test("client --shared against a --no-sessions server; auto falls back to the pair", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir, ["--no-sessions"]);
  assert.deepEqual(entries(dir), [".pipe.keep-*", "pipe.in", "pipe.out"]);
  const shared = await client(dir, ["--shared", "--send", "one"]);
  assert.equal(shared.stdout, "one\n");
  assert.equal(shared.code, 0);
  const auto = await client(dir, ["--count", "2", "--interval", "0"]);
  assert.equal(auto.stderr, "");
  assert.equal(auto.stdout, defaultOutput(2));
  assert.equal(auto.code, 0);
  const stopped = await server.done;
  assert.equal(stopped.code, 0);
  assert.equal(
    summary(stopped.stdout),
    "server stopped: 3 messages, 13 bytes, 2 clients (0 in sessions), T s\n",
  );
  assert.deepEqual(entries(dir), []);
});

test("client: no server is exit 1 naming the FIFO, and nothing is created", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  for (const args of [["--send", "x"], ["--shared"], ["--stdin"], ["--timeout", "100"]]) {
    const result = await client(dir, args, args[0] === "--stdin" ? "x\n" : undefined);
    assert.equal(
      result.stderr,
      `error: Cannot open FIFO "${dir}/pipe.in": it does not exist (is the server running?)\n`,
      args.join(" "),
    );
    assert.equal(result.stdout, "");
    assert.equal(result.code, 1);
    assert.deepEqual(entries(dir), [], args.join(" ")); // no O_CREAT, no session directory
  }
});

test("client --timeout: stale FIFOs that nobody reads time out, untouched", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  const stale = ["pipe.in", "pipe.out", "pipe.ctl"].map((f) => `${dir}/${f}`);
  const made = await new Deno.Command("mkfifo", { args: ["-m", "600", ...stale] }).output();
  assert.equal(made.code, 0);
  const inodes = stale.map((p) => Deno.lstatSync(p).ino);
  // A stale NAME.ctl is not a session server: auto mode tries the pair, and times out there.
  for (const extra of [[], ["--shared"]]) {
    const result = await client(dir, ["--timeout", "300", "--send", "x", ...extra]);
    assert.equal(
      result.stderr,
      `error: Timed out after 300 ms waiting for a reader on FIFO "${dir}/pipe.in" ` +
        "(is the server running?)\n",
    );
    assert.equal(result.stdout, "");
    assert.equal(result.code, 1);
  }
  assert.deepEqual(entries(dir), ["pipe.ctl", "pipe.in", "pipe.out"]);
  assert.deepEqual(stale.map((p) => Deno.lstatSync(p).ino), inodes);
});

test("client: refuses a FIFO others may write (0622), 0644 with --strict, a symlink", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  for (
    const [mode, args, reason] of [
      ["622", [], "its mode 0622 lets other users write to it"],
      ["644", ["--strict"], "its mode 0644 lets other users in (expected 0600)"],
    ] as const
  ) {
    const made = await new Deno.Command("mkfifo", { args: ["-m", mode, `${dir}/pipe.in`] })
      .output();
    assert.equal(made.code, 0);
    const result = await client(dir, ["--timeout", "300", "--send", "x", ...args]);
    assert.equal(result.stderr, `error: Cannot use FIFO "${dir}/pipe.in": ${reason}\n`);
    assert.equal(result.code, 1);
    Deno.removeSync(`${dir}/pipe.in`);
  }
  const ln = await new Deno.Command("ln", { args: ["-s", "/dev/null", `${dir}/pipe.in`] }).output();
  assert.equal(ln.code, 0);
  const link = await client(dir, ["--timeout", "300", "--send", "x"]);
  assert.equal(link.stderr, `error: Cannot use FIFO "${dir}/pipe.in": it is a symlink\n`);
  assert.equal(link.code, 1);
  assert.deepEqual(entries(dir), ["pipe.in"]);
});

/** Waits until the default mode's first echo is printed; fails fast if the client exits. */
async function echoed(proc: Proc): Promise<void> {
  await Promise.race([
    waitUntil(() => proc.stdout().includes("received msg: msg 1\n"), 10_000, "the first echo"),
    proc.done.then((r) => {
      throw new Error(`The client exited (${r.code}) before an echo: ${r.stderr}`);
    }),
  ]);
}

/**
 * Runs `body` with the server frozen (SIGSTOP), then thaws and stops it cleanly. Freeze
 * only a server that has answered a session, so the freeze lands on a server that serves,
 * not one still starting.
 */
async function whileFrozen(server: Proc, dir: string, body: () => Promise<void>) {
  server.child.kill("SIGSTOP");
  try {
    await body();
  } finally {
    server.child.kill("SIGCONT");
    server.child.kill("SIGTERM");
  }
  const stopped = await server.done;
  assert.equal(stopped.code, 0);
  assert.deepEqual(entries(dir), []); // the client removed its session directory too
}

test("client: a server that stops answering mid-run is a timeout, exit 1", async () => {
  for (const mode of ["session", "shared"] as const) {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await startServer(dir);
    const extra = mode === "shared" ? ["--shared"] : [];
    if (mode === "shared") {
      assert.equal((await client(dir, ["--send", "warm-up"])).stdout, "warm-up\n");
    }
    await using proc = runCli(
      "client.ts",
      dir,
      ["--count", "5", "--interval", "300", "--timeout", "1000", ...extra],
      { deadline: 15_000 },
    );
    await echoed(proc);
    await whileFrozen(server, dir, async () => {
      const result = await proc.done;
      // Frozen after echo k (1, unless this machine is very slow): msg k+1 gets no answer.
      const k = result.stdout.split("received msg:").length - 1;
      assert.ok(k >= 1 && k < 5, result.stdout);
      assert.equal(result.stdout, `${defaultOutput(k)}sent msg: msg ${k + 1}\n`, mode);
      const reply = mode === "shared" ? `${dir}/pipe.out` : `${dir}/pipe.session-[0-9a-f]+/reply`;
      assert.match(
        result.stderr,
        new RegExp(
          `^error: Timed out after 1000 ms waiting for a reply on "${reply}" ` +
            "\\(is the server running\\?\\)\n$",
        ),
        `${mode}: ${result.stderr}`,
      );
      assert.equal(result.code, 1);
    });
  }
});

// A stopped process's parked open() is interrupted and no longer counts as a reader, so a
// frozen server is a timeout on its input.
test("client --shared: a frozen server is a timeout on its input FIFO", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir);
  assert.equal((await client(dir, ["--send", "warm-up"])).stdout, "warm-up\n");
  await whileFrozen(server, dir, async () => {
    const result = await client(dir, ["--shared", "--timeout", "400", "--send", "x"]);
    assert.equal(
      result.stderr,
      `error: Timed out after 400 ms waiting for a reader on FIFO "${dir}/pipe.in" ` +
        "(is the server running?)\n",
    );
    assert.equal(result.code, 1);
  });
});

// Regression: the session's reply open used to carry the timeout only in its signal, and
// said "Timed out after undefined ms waiting for a writer on FIFO .../reply".
test("client (session): a frozen server is a timeout naming how long and which server", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir);
  assert.equal((await client(dir, ["--send", "warm-up"])).stdout, "warm-up\n");
  await whileFrozen(server, dir, async () => {
    const result = await client(dir, ["--timeout", "400", "--send", "x"]);
    assert.equal(
      result.stderr,
      `error: Timed out after 400 ms waiting for the server to answer on "${dir}/pipe.ctl" ` +
        "(is the server running?)\n",
    );
    assert.equal(result.stdout, "");
    assert.equal(result.code, 1);
    // The client removed its session directory; the frozen server's FIFOs are untouched.
    assert.deepEqual(entries(dir), [".pipe.keep-*", "pipe.ctl", "pipe.in", "pipe.out"]);
  });
});

test("client: usage errors exit 2 and create nothing", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  const usage = 'Run "client.ts --help" for usage.\n';
  const cases: [string[], string][] = [
    [["--send", "a", "--stdin"], "error: Options --send and --stdin cannot be combined"],
    [["--bogus"], "error: Unknown option '--bogus'"],
    [
      ["--count", "abc"],
      'error: Invalid --count "abc": expected a whole number from 0 to 2147483647',
    ],
    [
      ["--timeout", "0"],
      'error: Invalid --timeout "0": expected a whole number from 1 to 2147483647',
    ],
    [
      ["--interval", "1.5"],
      'error: Invalid --interval "1.5": expected a whole number from 0 to 2147483647',
    ],
    [["--framing", "json"], 'error: Invalid --framing "json": expected one of lines, length, raw'],
    [["--name", "a/b"], 'error: Invalid --name "a/b": use letters, digits, ".", "_" and "-"'],
    [["--exit-word", "a\nb"], 'error: Invalid --exit-word "a\\nb": it cannot contain a newline'],
  ];
  for (const [args, message] of cases) {
    const result = await client(dir, args);
    assert.equal(result.stderr, `${message}\n${usage}`, args.join(" "));
    assert.equal(result.stdout, "");
    assert.equal(result.code, 2, args.join(" "));
    assert.deepEqual(entries(dir), []);
  }
});
