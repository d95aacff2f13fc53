/**
 * Sessions end to end: many client processes against one server, idle crowds, killed
 * clients, refused requests, framing mismatch, the plain-pair fallback, stopping, the
 * library's listen()/connect(), and garbage on the request FIFO.
 *
 * Every test works in its own private directory and ends by itself (subprocess deadlines,
 * polling with time limits). The heavy variants are in stress_test.ts.
 *
 * @module
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { closeSync, constants, openSync, readSync, writeSync } from "node:fs";
import { connect } from "../lib/session/connect.ts";
import { listen } from "../lib/session/listen.ts";
import { encodeRecord, RecordType } from "../lib/session/session_protocol.ts";
import {
  entries,
  ioOf,
  isFifo,
  procField,
  requires,
  runCli,
  startServer,
  stopServer,
  tempDir,
  waitForProc,
  waitForStopped,
  waitUntil,
} from "./helpers.ts";
import {
  type EchoScenario,
  echoScenario,
  idleScenario,
  runDriver,
  serverFiles,
  startSessionServer,
  stoppedLine,
  summaryOf,
} from "./session_scenarios.ts";

const test = requires("--allow-run");

/** A received message as text (`null` at the end of the stream). */
const text = (bytes: Uint8Array | null) => bytes === null ? null : new TextDecoder().decode(bytes);

/**
 * Each echo scenario, and how many clients must report (the ones not killed). Small: each
 * client's first messages are still every edge size up to 256 KiB; stress_test.ts runs
 * 32 clients x 1,000.
 */
const ECHO_SCENARIOS: [name: string, scenario: EchoScenario, survivors: number][] = [
  [
    "4 client processes x 40 random lines (0 B to 256 KiB) each get exactly their own echoes",
    { framing: "lines", clients: 4, count: 40, dist: "uniform" },
    4,
  ],
  [
    // Log-uniform sizes: every size class at a fraction of the volume.
    "4 client processes x 40 random binary length-framed messages each get exactly their own echoes",
    { framing: "length", clients: 4, count: 40, dist: "log" },
    4,
  ],
  [
    // Guards cleanup of sessions that end on EPIPE: their directories go once the client
    // is gone, not at the next server start.
    "SIGKILL a quarter of the clients mid-stream: the rest finish byte-exact, nothing of theirs is left once the server noticed, the server stops cleanly",
    { framing: "lines", clients: 4, kill: 1, count: 40, dist: "uniform", checkLeftovers: true },
    3,
  ],
];

for (const [name, scenario, survivors] of ECHO_SCENARIOS) {
  test(name, async () => {
    assertEquals((await echoScenario(scenario)).length, survivors);
  });
}

test("100 sessions opened at once in one process, each with a receive pending, plus one active one: 50 round trips, then nothing left", async () => {
  // More opens and pending receives than Deno's 32 blocking threads: parked, they would
  // stall the whole process. stress_test.ts holds 1,000.
  const summary = await idleScenario({
    idle: 100,
    rounds: 50,
    checkIdle: true,
    listening: true,
    concurrency: 100,
  });
  assertEquals(summary.idle, 100);
});

test("a client killed while idle: the server notices and removes its session directory", async () => {
  using tmp = tempDir();
  await using server = await startSessionServer(tmp.path);
  // A 1-byte message: its echo fits in the reply FIFO, nothing stays queued.
  await using idler = runDriver(tmp.path, "stall", ["--size", "1"]);
  await waitUntil(() => idler.stdout().includes(`"stalled":true`), 15_000, "the client");
  assertEquals(entries(tmp.path).length, 5); // the server's 4 and the session directory
  idler.child.kill("SIGKILL");
  assertEquals((await idler.done).signal, "SIGKILL");
  // The server's liveness sweeps back off to one every 8 s while nothing changes.
  await waitUntil(
    () => JSON.stringify(entries(tmp.path)) === JSON.stringify(serverFiles()),
    15_000,
    `the session directory to be removed (${entries(tmp.path).join(" ")})`,
  );
  assert((await stopServer(server)).startsWith(stoppedLine(1, 1, 1, 1)));
  assertEquals(entries(tmp.path), []);
});

test("a client killed with replies in flight leaves no session directory (minimal repro)", async () => {
  // Guards cleanup of sessions that end on EPIPE with replies still queued.
  using tmp = tempDir();
  await using server = await startSessionServer(tmp.path);
  // 512 KiB echo, never read: the server keeps retrying the full reply FIFO.
  const { read } = await ioOf(server.child.pid);
  await using staller = runDriver(tmp.path, "stall", ["--size", String(512 * 1024)]);
  await waitUntil(() => staller.stdout().includes(`"stalled":true`), 15_000, "the staller");
  // Replies in flight: the server read the whole message, and its 64 KiB reply FIFO
  // holds at most an eighth of the echo, so the rest waits in the server.
  await waitForProc(
    server.child.pid,
    "io",
    ([io]) => procField(io, "rchar") >= read + 512 * 1024,
    "the server to read the whole message",
  );
  staller.child.kill("SIGKILL");
  await staller.done;
  await waitUntil(
    () => JSON.stringify(entries(tmp.path)) === JSON.stringify(serverFiles()),
    3000,
    `the killed client's session directory to be removed (${entries(tmp.path).join(" ")})`,
  );
  await stopServer(server);
  assertEquals(entries(tmp.path), []);
});

test("connect() waits (within its timeout) while the shared request FIFO is full", async () => {
  // Guards the HELLO path: with the request FIFO full, connect() waits for room (within
  // its timeout) through the blocking end, as DATA records do, instead of failing.
  using tmp = tempDir();
  const ctl = `${tmp.path}/pipe.ctl`;
  await using server = await startSessionServer(tmp.path);
  server.child.kill("SIGSTOP"); // nobody reads NAME.ctl for a moment: it fills up
  await waitForStopped(server.child.pid, "the server to stop");
  // (startSessionServer waited for the server to hold NAME.ctl open.)
  const fd = openSync(ctl, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    // DATA records for session 0, which never exists: the server ignores them.
    const record = encodeRecord(RecordType.DATA, 0, new Uint8Array(4084));
    for (;;) {
      try {
        writeSync(fd, record);
      } catch {
        break; // EAGAIN: full
      }
    }
    const client = runCli("client.ts", tmp.path, ["--send", "hi", "--timeout", "10000"]);
    // The client waits for room: one of its threads blocks writing the full FIFO.
    await waitForProc(
      client.child.pid,
      "task/*/wchan",
      (wchans) => wchans.some((wchan) => wchan.endsWith("pipe_write")),
      "the client to block writing its HELLO",
    );
    server.child.kill("SIGCONT");
    const result = await client.done;
    assertEquals([result.code, result.stdout, result.stderr], [0, "hi\n", ""]);
  } finally {
    closeSync(fd);
    server.child.kill("SIGCONT");
  }
  await stopServer(server);
  assertEquals(entries(tmp.path), []);
});

/** Makes FIFOs with `mkfifo -m MODE`. */
async function mkfifo(mode: string, ...paths: string[]): Promise<void> {
  const { code } = await new Deno.Command("mkfifo", { args: ["-m", mode, "--", ...paths] })
    .output();
  assertEquals(code, 0);
}

/** What lstat says of everything under `root`, and the contents of its regular files. */
function snapshot(root: string): string {
  const out: string[] = [];
  const walk = (path: string) => {
    const i = Deno.lstatSync(path);
    out.push(
      `${path} ino=${i.ino} mode=${i.mode?.toString(8)} uid=${i.uid} size=${i.size} ` +
        `nlink=${i.nlink} mtime=${i.mtime?.getTime()} ctime=${i.ctime?.getTime()}`,
    );
    if (i.isFile) out.push(`  content=${Deno.readTextFileSync(path)}`);
    if (i.isSymlink) out.push(`  target=${Deno.readLinkSync(path)}`);
    if (i.isDirectory) {
      for (const name of entries(path)) walk(`${path}/${name}`);
    }
  };
  walk(root);
  return out.join("\n");
}

/** Writes one HELLO naming `dir` on the request FIFO, as a client would. */
function sendHello(control: string, dir: string, framing = "lines"): void {
  const payload = new TextEncoder().encode(JSON.stringify({ v: 1, dir, framing }));
  using file = Deno.openSync(control, { write: true });
  assertEquals(file.writeSync(encodeRecord(RecordType.HELLO, 0, payload)), 12 + payload.length);
}

test("HELLOs naming a symlink, a file, a foreign dir, a 0644 reply FIFO or a 0755 dir are refused and nothing is touched", async () => {
  using tmp = tempDir();
  using outside = tempDir();
  const dir = tmp.path;
  const ctl = `${dir}/pipe.ctl`;
  await using server = await startSessionServer(dir);

  // Planted after the server started, so its sweep of leftovers never saw them.
  const real = `${outside.path}/pipe.session-real`; // a perfect session dir, elsewhere
  const symlink = `${dir}/pipe.session-symlink`;
  const file = `${dir}/pipe.session-file`;
  const foreign = `${outside.path}/pipe.session-foreign`;
  const loose = `${dir}/pipe.session-loose`; // reply FIFO 0644
  const open = `${dir}/pipe.session-open`; // dir 0755
  for (const d of [real, foreign, loose, open]) Deno.mkdirSync(d, { mode: 0o700 });
  Deno.chmodSync(open, 0o755);
  // (Deno.symlinkSync needs unscoped --allow-write.)
  assertEquals((await new Deno.Command("ln", { args: ["-s", real, symlink] }).output()).code, 0);
  Deno.writeTextFileSync(file, "not a directory\n", { mode: 0o600 });
  await mkfifo(
    "0600",
    `${real}/reply`,
    `${real}/alive`,
    `${foreign}/reply`,
    `${foreign}/alive`,
    `${loose}/alive`,
    `${open}/reply`,
    `${open}/alive`,
  );
  await mkfifo("0644", `${loose}/reply`);
  // Hold every FIFO open as a live client would (O_RDWR never waits): were a check missing,
  // the server's non-blocking opens would succeed and its handshake would show up here.
  const fds = [real, foreign, loose, open].flatMap((d) =>
    ["reply", "alive"].map((f) => openSync(`${d}/${f}`, constants.O_RDWR | constants.O_NONBLOCK))
  );
  try {
    const planted = [symlink, file, loose, open, outside.path];
    const before = planted.map(snapshot);
    const expected = [
      `Refused a session for "${symlink}": it is a symlink`,
      `Refused a session for "${file}": it is not a directory`,
      `Refused a session for "${foreign}": it is not a session directory of "${dir}/pipe"`,
      `Refused a session for "${loose}": Cannot use FIFO "${loose}/reply": ` +
      `its mode 0644 lets other users in (expected 0600)`,
      `Refused a session for "${open}": its mode 755 is not 0700`,
    ];
    for (const target of [symlink, file, foreign, loose, open]) sendHello(ctl, target);
    await waitUntil(
      () => expected.every((line) => server.stderr().includes(line)),
      10_000,
      `the refusals in the server's stderr:\n${server.stderr()}`,
    );
    assertEquals(
      server.stderr().split("\n").filter((l: string) => l.startsWith("Refused a session")),
      expected,
    );

    // The server keeps serving.
    const client = await runCli("client.ts", dir, ["--send", "still serving"]).done;
    assertEquals([client.code, client.stdout, client.stderr], [0, "still serving\n", ""]);

    // Nothing was written to, opened for good, chmodded or removed.
    assertEquals(planted.map(snapshot), before);
    for (const fd of fds) {
      let n: number | string;
      try {
        n = readSync(fd, new Uint8Array(1));
      } catch (error) {
        n = (error as { code?: string }).code ?? String(error);
      }
      assertEquals(n, "EAGAIN");
    }
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  assertMatch(await stopServer(server), /^server stopped: 1 message, 13 bytes, 1 client/);
  assertEquals(entries(dir), [
    "pipe.session-file",
    "pipe.session-loose",
    "pipe.session-open",
    "pipe.session-symlink",
  ]);
  assertEquals(entries(outside.path), ["pipe.session-foreign", "pipe.session-real"]);
});

test("framing mismatch: every length client against a lines server exits 1, told why at once, no hang", async () => {
  // Guards the refusal path: the server keeps a refused client's reply FIFO open until
  // the client has gone, so a client whose open comes late still reads why. Ten in a row
  // give that race ten chances.
  using tmp = tempDir();
  await using server = await startSessionServer(tmp.path);
  const refusal = `framing mismatch: the server uses "lines", the client "length"`;
  for (let i = 0; i < 10; i++) {
    const client = await runCli("client.ts", tmp.path, [
      "--framing",
      "length",
      "--send",
      "hi",
      "--timeout",
      "2000",
    ], { deadline: 15_000 }).done;
    assertEquals(
      [client.code, client.stdout, client.stderr],
      [1, "", `error: The server refused the session: ${refusal}\n`],
      `client ${i}`,
    );
    assertEquals(entries(tmp.path), serverFiles(), `after client ${i}`);
  }
  const logged = server.stderr().split("\n").filter((line) => line !== "");
  assertEquals(logged.length, 10, server.stderr());
  for (const line of logged) {
    assertMatch(
      line,
      /^Refused a session for ".*": framing mismatch: the server uses "lines", the client "length"$/,
    );
  }
  assertMatch(await stopServer(server), /^server stopped: 0 messages, 0 bytes, 0 clients/);
  assertEquals(entries(tmp.path), []);
});

test("fallback: the client uses the plain pair of a --no-sessions server, and --shared forces it", async () => {
  using tmp = tempDir();
  {
    await using server = await startServer(tmp.path, ["--no-sessions"]);
    assertEquals(entries(tmp.path), [".pipe.keep-*", "pipe.in", "pipe.out"]);
    const client = await runCli("client.ts", tmp.path, ["--send", "plain"]).done;
    assertEquals([client.code, client.stdout, client.stderr], [0, "plain\n", ""]);
    assert((await stopServer(server)).startsWith(stoppedLine(1, 5, 1, 0)));
    assertEquals(entries(tmp.path), []);
  }
  {
    await using server = await startSessionServer(tmp.path);
    const shared = await runCli("client.ts", tmp.path, ["--shared", "--send", "shared"]).done;
    assertEquals([shared.code, shared.stdout, shared.stderr], [0, "shared\n", ""]);
    const session = await runCli("client.ts", tmp.path, ["--send", "session"]).done;
    assertEquals([session.code, session.stdout, session.stderr], [0, "session\n", ""]);
    // 2 clients, 1 of them in a session: --shared took the plain pair.
    assert((await stopServer(server)).startsWith(stoppedLine(2, 13, 2, 1)));
    assertEquals(entries(tmp.path), []);
  }
});

test("the exit word over a session stops the server", async () => {
  using tmp = tempDir();
  await using server = await startSessionServer(tmp.path);
  const client = await runCli("client.ts", tmp.path, ["--count", "2", "--interval", "0"]).done;
  assertEquals(client.code, 0, client.stderr);
  assertEquals(
    client.stdout,
    "sent msg: msg 1\nreceived msg: msg 1\nsent msg: msg 2\nreceived msg: msg 2\n",
  );
  const stopped = await server.done;
  assertEquals(stopped.code, 0, stopped.stderr);
  assert(stopped.stdout.startsWith(stoppedLine(2, 10, 1, 1)), stopped.stdout);
  assertEquals(entries(tmp.path), []);
});

test("SIGTERM with session clients connected: they exit 1 with a clear error, the server 0, nothing left", async () => {
  using tmp = tempDir();
  await using server = await startSessionServer(tmp.path);
  const clients = [0, 1, 2].map(() =>
    runCli("client.ts", tmp.path, ["--count", "100000", "--interval", "20", "--no-exit"])
  );
  try {
    for (const client of clients) {
      await waitUntil(() => client.stdout().includes("received msg: msg 2\n"), 15_000, "echoes");
    }
    assertMatch(await stopServer(server), /^server stopped: .*, 3 clients \(3 in sessions\)/);
    for (const client of clients) {
      const { code, stderr } = await client.done;
      assertEquals(code, 1);
      assertMatch(
        stderr,
        /^error: (The server closed the connection|Cannot write FIFO ".*\/pipe\.ctl": no reader)\n$/,
      );
    }
    assertEquals(entries(tmp.path), []);
  } finally {
    for (const client of clients) await client[Symbol.asyncDispose]();
  }
});

test("listen()/connect() in-process: an upper-casing server, closed by its AbortSignal", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  const controller = new AbortController();
  const listener = await listen({ dir, name: "upper", signal: controller.signal });
  assertEquals(listener.path, `${dir}/upper.ctl`);
  let served = 0;
  const server = (async () => {
    const tasks: Promise<void>[] = [];
    for await (const conn of listener) {
      served++;
      tasks.push((async () => {
        for await (const message of conn) conn.send(text(message)!.toUpperCase());
      })());
    }
    await Promise.all(tasks);
  })();

  // One client comes and goes: its server side sees the end of its stream.
  {
    await using conn = await connect({ dir, name: "upper", mode: "session" });
    await conn.send("first");
    assertEquals(text(await conn.receive()), "FIRST");
  }
  const conn = await connect({ dir, name: "upper" }); // auto: a session
  assertEquals(conn.mode, "session");
  const long = "abc".repeat(100_000); // 300 KB: several records, several pipe fulls
  for (const message of ["hello", "", "Mixed Case 123", long]) {
    await conn.send(message);
    assertEquals(text(await conn.receive()), message.toUpperCase());
  }
  // Pipelined: all sent before any is received.
  const many = Array.from({ length: 50 }, (_, i) => `message ${i}`);
  for (const message of many) await conn.send(message);
  for (const message of many) assertEquals(text(await conn.receive()), message.toUpperCase());

  controller.abort();
  await server; // the listener ended, and every connection's stream with it
  assertEquals(served, 2);
  assertEquals(await conn.receive({ timeout: 5000 }), null);
  await waitUntil(() => !isFifo(listener.path), 5000, "the listener to remove upper.ctl");
  await conn.close();
  assertEquals(entries(dir), []);
});

test("listen(): close() called again while closing waits for the first close", async () => {
  // Guards close(): a second call waits for the first to finish.
  using tmp = tempDir();
  const controller = new AbortController();
  const listener = await listen({ dir: tmp.path, name: "twice", signal: controller.signal });
  controller.abort();
  await listener.close();
  assertEquals(entries(tmp.path), []);
});

test("garbage on NAME.ctl is dropped with one log line and sessions keep working", async () => {
  using tmp = tempDir();
  const ctl = `${tmp.path}/pipe.ctl`;
  await using server = await startSessionServer(tmp.path);
  const before = await runCli("client.ts", tmp.path, ["--send", "before"]).done;
  assertEquals([before.code, before.stdout], [0, "before\n"]);
  // As a shell would, with a deadline in case nobody reads NAME.ctl.
  const echo = await new Deno.Command("sh", {
    args: ["-c", 'echo hi > "$1"', "sh", ctl],
    signal: AbortSignal.timeout(10_000),
  }).output();
  assertEquals(echo.code, 0);
  const dropped = "Dropped 3 bytes on the request FIFO that are not records\n";
  await waitUntil(() => server.stderr().includes(dropped), 5000, "the log line");
  const after = await runCli("client.ts", tmp.path, ["--send", "after"]).done;
  assertEquals([after.code, after.stdout, after.stderr], [0, "after\n", ""]);
  const driver = await runDriver(tmp.path, "echo", ["--count", "20", "--dist", "log"]).done;
  assertEquals(driver.code, 0, driver.stderr);
  assertEquals(summaryOf(driver.stdout).messages, 20);
  assertEquals(server.stderr(), dropped);
  assertMatch(await stopServer(server), /^server stopped: 22 messages, .*, 3 clients \(3 in/);
  assertEquals(entries(tmp.path), []);
});
