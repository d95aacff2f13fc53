/**
 * Fault injection against a real server subprocess: SIGKILL mid-transfer and recovery by a
 * new server, SIGTERM/SIGINT under load, a session client that stops reading, a plain
 * client that walks away from its replies.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { connect } from "../lib/session/connect.ts";
import { FifoFile, hasReader } from "../lib/fifo/fifo_file.ts";
import { encodeRecord, RecordType } from "../lib/session/session_protocol.ts";
import {
  entries,
  fifosUnder,
  flagsFor,
  isRunning,
  plainPairIdle,
  type Proc,
  projectPath,
  requires,
  roundTrip,
  runCli,
  spawn,
  spawnSoakClient,
  startServer,
  stopServer,
  tempDir,
  waitForStopped,
  waitForThread,
  waitUntil,
} from "./helpers.ts";

const test = requires("--allow-run");

/** A soak_client.ts process: `clients` sessions streaming random, checked messages. */
function soakClient(
  dir: string,
  clients: number,
  seconds: number,
  seed: number,
  extra: string[] = [],
) {
  return spawnSoakClient(dir, [
    "--clients",
    String(clients),
    "--seconds",
    String(seconds),
    "--seed",
    String(seed),
    "--max-size",
    "16384",
    ...extra,
  ], { deadline: 30_000 });
}

/** The last JSON line a soak_client printed. */
function lastReport(proc: Proc | string): Record<string, number | string | boolean> | undefined {
  const text = typeof proc === "string" ? proc : proc.stdout();
  const line = text.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  return line ? JSON.parse(line) : undefined;
}

/** Waits until a soak_client has had some echoes checked. */
function streaming(proc: Proc, what: string, sessions = 1): Promise<void> {
  const report = () => lastReport(proc);
  return waitUntil(
    () => Number(report()?.echoed ?? 0) > 0 && Number(report()?.connections ?? 0) >= sessions,
    15_000,
    `${what} streaming in ${sessions} session(s)`,
  );
}

/** A client.ts process streaming `msg 1`, `msg 2`, … as fast as the server answers. */
function cliStreamer(dir: string, shared: boolean, timeout: number): Proc {
  return runCli("client.ts", dir, [
    "--count",
    "100000000",
    "--interval",
    "0",
    "--no-exit",
    "--timeout",
    String(timeout),
    ...(shared ? ["--shared"] : []),
  ], { deadline: 30_000 });
}

/** Waits until a client.ts streamer has had `n` echoes. */
function cliStreaming(proc: Proc, n: number, what: string): Promise<void> {
  return waitUntil(
    () => proc.stdout().includes(`received msg: msg ${n}\n`),
    15_000,
    `${what} streaming`,
  );
}

/** Kills whatever is still running (each by its own handle), ignoring the already gone. */
async function cleanup(...procs: (Proc | undefined)[]): Promise<void> {
  for (const proc of procs) {
    if (!proc) continue;
    try {
      proc.child.kill("SIGCONT");
    } catch { /* gone */ }
    await proc[Symbol.asyncDispose]();
  }
}

test("faults: SIGKILL mid-transfer; clients fail, saying why; a new server recovers", async () => {
  using dir = tempDir("faults-");
  const procs: Proc[] = [];
  try {
    const server = await startServer(dir.path, [], { deadline: 30_000 });
    procs.push(server);
    const timeout = 2000;
    const streamers = [
      cliStreamer(dir.path, false, timeout),
      cliStreamer(dir.path, false, timeout),
      cliStreamer(dir.path, false, timeout),
      cliStreamer(dir.path, true, timeout),
    ];
    procs.push(...streamers);
    // Killed with the server, before the server can notice: its session directory stays
    // behind for the next server to sweep.
    const victimSessions = 2;
    const victim = soakClient(dir.path, victimSessions, 30, 7);
    procs.push(victim);
    await streaming(victim, "the victim", victimSessions); // both directories exist
    for (const [i, s] of streamers.entries()) await cliStreaming(s, 50, `client ${i}`);

    // The victim is frozen first: between two kills, a running victim could see the server
    // die and close a session, removing its directory, before its own SIGKILL lands (seen
    // once in a full run on 2 busy cores).
    victim.child.kill("SIGSTOP");
    server.child.kill("SIGKILL");
    victim.child.kill("SIGKILL");
    const killedAt = performance.now();
    await server.done;
    await victim.done;
    const exits = await Promise.all(streamers.map(async (s) => {
      const result = await s.done;
      return { ...result, ms: performance.now() - killedAt };
    }));
    for (const [i, exit] of exits.entries()) {
      assertEquals(exit.code, 1, `client ${i}: ${exit.stderr}`);
      assert(
        /^error: (The server closed the connection|Cannot write FIFO .*: no reader|Timed out)/m
          .test(exit.stderr),
        `client ${i} says why it failed: ${exit.stderr}`,
      );
    }
    console.log(
      `clients gave up ${exits.map((e) => Math.round(e.ms)).join(", ")} ms after the SIGKILL: ` +
        exits.map((e) => e.stderr.trim().split("\n")[0]).join(" | "),
    );
    const left = entries(dir.path);
    // A SIGKILLed server cannot clean up: its FIFOs and private directory stay, for the
    // next server to replace and sweep.
    assertEquals(left.filter((e) => !e.startsWith("pipe.session-")), [
      ".pipe.keep-*",
      "pipe.ctl",
      "pipe.in",
      "pipe.out",
    ]);
    const dead = left.filter((e) => e.startsWith("pipe.session-"));
    assertEquals(dead.length, victimSessions, `left: ${left}`);

    const next = await startServer(dir.path, [], { deadline: 30_000 });
    procs.push(next);
    assertEquals(
      entries(dir.path),
      [".pipe.keep-*", "pipe.ctl", "pipe.in", "pipe.out"],
      "after the sweep",
    );
    console.log(`the new server replaced the stale FIFOs and swept ${dead.length} dead sessions`);
    await roundTrip(dir.path, "after the crash");
    const send = await runCli("client.ts", dir.path, ["--send", "cli after the crash"]).done;
    assertEquals([send.code, send.stdout], [0, "cli after the crash\n"], send.stderr);
    await stopServer(next);
    assertEquals(entries(dir.path), []);
  } finally {
    await cleanup(...procs);
  }
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`faults: ${signal} under load stops the server cleanly (its time is logged, not judged)`, async () => {
    using dir = tempDir("faults-");
    const procs: Proc[] = [];
    try {
      const server = await startServer(dir.path, [], { deadline: 30_000 });
      procs.push(server);
      const loaders = [1, 2, 3].map((seed) => soakClient(dir.path, 4, 30, seed));
      const plain = cliStreamer(dir.path, true, 5000);
      procs.push(...loaders, plain);
      for (const [i, l] of loaders.entries()) await streaming(l, `loader ${i}`);
      await cliStreaming(plain, 50, "the plain client");

      const started = performance.now();
      await stopServer(server, signal);
      const ms = performance.now() - started;
      console.log(`${signal}: the server stopped in ${Math.round(ms)} ms under load`);
      for (const proc of [...loaders, plain]) {
        const result = await proc.done;
        assertEquals(result.code, 1, `a client outlived the server: ${result.stdout}`);
        assert(/^error: /m.test(result.stderr), result.stderr);
      }
      assertEquals(entries(dir.path), [], "left behind once the clients are gone");
    } finally {
      await cleanup(...procs);
    }
  });
}

/** The session protocol driver of fuzz_driver.ts in `flood` mode: never reads. */
function flooder(dir: string, bytes: number): Proc {
  return spawn(Deno.execPath(), [
    "run",
    "--allow-all", // fuzz_driver.ts shares its flags with the /proc-reading plain mode
    projectPath("tests/fuzz_driver.ts"),
    "flood",
    dir,
    "pipe",
    "lines",
    "0",
    "0",
    String(bytes),
  ], { deadline: 30_000, stdin: "piped" });
}

test("faults: a session client that stops reading is dropped; the others never notice", async () => {
  using dir = tempDir("faults-");
  const procs: Proc[] = [];
  try {
    // A small bound, so that the drop comes after a few hundred KiB.
    const server = await startServer(dir.path, ["--max-message", "65536"], {
      deadline: 30_000,
    });
    procs.push(server);
    const others = soakClient(dir.path, 8, 5, 11);
    const paused = soakClient(dir.path, 2, 5, 12);
    procs.push(others, paused);
    await streaming(paused, "the client to pause");
    paused.child.kill("SIGSTOP");
    const flood = flooder(dir.path, 2 << 20);
    procs.push(flood);
    await waitUntil(
      () => /^Dropped session \d+: .*not reading/m.test(server.stderr()),
      15_000,
      "the drop",
    );
    assertEquals(
      server.stderr().trim().split("\n").length,
      1,
      `one log line, for the drop: ${server.stderr()}`,
    );

    const result = await others.done;
    assertEquals(result.code, 0, `the others: ${result.stderr}`);
    const final = lastReport(result.stdout)!;
    assertEquals([final.final, final.lost, final.corrupt], [true, 0, 0], result.stdout);
    assert(Number(final.echoed) > 100, `the others made progress: ${result.stdout}`);

    // The paused client was never dropped (it keeps within its window): it resumes intact.
    paused.child.kill("SIGCONT");
    const resumed = await paused.done;
    assertEquals(resumed.code, 0, `the paused client: ${resumed.stderr}`);
    assertEquals(lastReport(resumed.stdout)?.lost, 0, resumed.stdout);

    // The dropped flooder holds its reply FIFO open and reads nothing, yet no thread of the
    // server is left blocked writing to it (the hub has only a few such writers).
    await waitForThread(server.child.pid, / \w*pipe_write$/m, "the dropped session's write", {
      expect: false,
    });

    // The flooder reads at last: at most what the pipe held, then the end of its session.
    await flood.closeStdin();
    const flooded = await flood.done;
    assertEquals(flooded.code, 0, flooded.stderr);
    const report = lastReport(flooded.stdout)!;
    assertEquals(report.eof, true);
    assert(Number(report.received) < Number(report.sent), flooded.stdout);

    console.log(
      `others: ${final.echoed} echoes checked, 0 lost; flooder dropped after ${report.sent} ` +
        `bytes sent, ${report.received} received; paused client resumed: ` +
        `${lastReport(resumed.stdout)?.echoed} echoes, 0 lost`,
    );
    await roundTrip(dir.path, "after the drop");
    await stopServer(server);
    assertEquals(entries(dir.path), []);
  } finally {
    await cleanup(...procs);
  }
});

const encoder = new TextEncoder();

/** `count` lines of 100 bytes. */
function lines(count: number, letter = "a"): Uint8Array {
  return encoder.encode(`${letter.repeat(99)}\n`.repeat(count));
}

test("faults: a plain client that closes its read end and leaves does not disturb the next", async () => {
  using dir = tempDir("faults-");
  const procs: Proc[] = [];
  try {
    const server = await startServer(dir.path, [], { deadline: 30_000 });
    procs.push(server);
    for (let round = 0; round < 5; round++) {
      await plainPairIdle(server.child.pid, "the server to let go of the last client");
      // Seed order; then half the echo is left unread, the read end closed under the
      // server's writes, the rest sent anyway. The replies fit in the pipe: no wait.
      const input = await FifoFile.open(`${dir.path}/pipe.in`, { access: "write", timeout: 5000 });
      const output = await FifoFile.open(`${dir.path}/pipe.out`, { access: "read", timeout: 5000 });
      await input.writeAll(lines(100));
      output.close();
      await input.writeAll(lines(100));
      input.close();
      // The plain pair serves one client at a time: a client that opened it while this one
      // was still being served would share its stream (sessions are for that). So wait
      // until the server has let go of this one (no writer left on its output), then
      // check that the next client gets only its own reply.
      await plainPairIdle(server.child.pid, "the walk-away's end");
      await roundTrip(dir.path, `after walk-away ${round}`);
    }
    assert(await isRunning(server));
    // At most one line per walk-away (the replies it left are dropped, not kept for the
    // next client), and nothing else: no error, no unhandled rejection.
    const logs = server.stderr().split("\n").filter((l) => l);
    assert(logs.length <= 5, server.stderr());
    for (const line of logs) {
      assert(/^No reader on ".*pipe\.out": dropped \d+ bytes of replies$/.test(line), line);
    }
    await stopServer(server);
    assertEquals(entries(dir.path), []);
  } finally {
    await cleanup(...procs);
  }
});

test({
  name: "faults regression: a plain client that leaves more unread echo than a pipe holds",
  // Regression (found here, fixed in 179edc7): the plain loop held NAME.out read-write, a
  // reader of its own output: a client that walked away from more than a pipe's worth of
  // echo blocked the worker for good, and the next client read the stale echo first.
  async fn() {
    using dir = tempDir("faults-regression-");
    await using server = await startServer(dir.path);
    const input = await FifoFile.open(`${dir.path}/pipe.in`, { access: "write", timeout: 5000 });
    const output = await FifoFile.open(`${dir.path}/pipe.out`, { access: "read", timeout: 5000 });
    await input.writeAll(lines(500, "A")); // 50 KB
    // Once the server waits for more input, it has written all that echo into NAME.out.
    await waitForThread(server.child.pid, /^worker-\d+ \w*pipe_read$/m, "the 50 KB echo");
    output.close(); // walks away from its echo...
    await input.writeAll(lines(1000, "A")); // ...while sending 100 KB more
    input.close();
    await plainPairIdle(server.child.pid, "the server to let go of the walk-away");
    await using conn = await connect({ dir: dir.path, mode: "shared", timeout: 3000 });
    await conn.send("hello B");
    const reply = await conn.receive();
    assertEquals(reply && new TextDecoder().decode(reply), "hello B");
    assert(await isRunning(server));
  },
});

for (const how of ["dropped, then killed", "killed with echo in flight"] as const) {
  test({
    name: `faults regression: a session's directory is removed once its client is gone (${how})`,
    // Regression (found here, fixed in 179edc7): HubSession.close(reason) ("Dropped session",
    // or "Session N ended" on EPIPE after the client died with echo queued) forgot the
    // session, and the liveness poll never looked at it again: a SIGKILLed client's directory
    // and FIFOs stayed in DIR, even after the server stopped. Seen in every soak with kills.
    async fn() {
      using dir = tempDir("faults-regression-");
      await using server = await startServer(
        dir.path,
        how === "dropped, then killed" ? ["--max-message", "65536"] : [],
      );
      // Dropped: 2 MiB unread passes the bound of a 64 KiB server. In flight: 1 MiB stays
      // under the bound of a 1 MiB server, queued; the kill makes the next flush hit EPIPE
      // well before the first liveness sweep.
      await using flood = flooder(dir.path, how === "dropped, then killed" ? 2 << 20 : 1 << 20);
      await waitUntil(() => flood.stdout().includes('"sent"'), 15_000, "the flood");
      if (how === "dropped, then killed") {
        await waitUntil(() => /^Dropped session/m.test(server.stderr()), 15_000, "the drop");
      }
      flood.child.kill("SIGKILL");
      await flood.done.catch(() => {});
      await waitUntil(() => server.stderr() !== "", 5000, "a log line");
      // Liveness sweeps back off (up to 8 s apart) while nothing changes.
      const serverOnly = JSON.stringify([".pipe.keep-*", "pipe.ctl", "pipe.in", "pipe.out"]);
      await waitUntil(
        () => JSON.stringify(entries(dir.path)) === serverOnly,
        15_000,
        `the session directory to be removed (${entries(dir.path).join(" ")})`,
      ).catch(() => {});
      assertEquals(
        entries(dir.path),
        [".pipe.keep-*", "pipe.ctl", "pipe.in", "pipe.out"],
        server.stderr(),
      );
      await stopServer(server);
      assertEquals(fifosUnder(dir.path), []);
    },
  });
}

test({
  name: "faults regression: connect() waits while the request FIFO is full",
  // Regression (found by bench/soak.ts, fixed in 179edc7): connectSession wrote its HELLO
  // with a non-blocking writeAllSync, which threw WouldBlock ('FIFO "…ctl" is full')
  // whenever other clients' DATA filled the request FIFO: connect() failed under load.
  async fn() {
    using dir = tempDir("faults-regression-");
    await using server = await startServer(dir.path);
    server.child.kill("SIGSTOP"); // nobody reads the request FIFO for a moment
    try {
      await waitForStopped(server.child.pid, "the server to stop");
      using control = FifoFile.openSync(`${dir.path}/pipe.ctl`, {
        access: "write",
        nonblocking: true,
      });
      const filler = encodeRecord(RecordType.DATA, 0, new Uint8Array(4084)); // no such id
      while (control.tryWrite(filler) > 0) { /* fill the pipe */ }
      // Resumed once connect() waits for room: a runtime thread of ours blocked writing.
      const resumed = waitForThread(Deno.pid, / \w*pipe_write$/m, "connect() to wait for room")
        .then(() => server.child.kill("SIGCONT"));
      await using conn = await connect({ dir: dir.path, mode: "session", timeout: 5000 });
      await resumed;
      await conn.send("through");
      assertEquals(new TextDecoder().decode((await conn.receive())!), "through");
    } finally {
      server.child.kill("SIGCONT");
    }
  },
});

test({
  name: "faults: one live client cannot pin the server's file descriptors",
  // Guards the per-directory watch of ended sessions: one client reusing its directory
  // must not pin a descriptor per session, and EMFILE on the plain pair is not fatal.
  async fn() {
    using dir = tempDir("faults-bug-");
    const procs: Proc[] = [];
    try {
      const server = spawn("sh", [
        "-c",
        'ulimit -n 256 && exec "$@"',
        "sh",
        Deno.execPath(),
        "run",
        ...flagsFor("server.ts", dir.path),
        projectPath("server.ts"),
        "--dir",
        dir.path,
        "--quiet",
      ], { deadline: 60_000 });
      procs.push(server);
      const ready = () => {
        try {
          return hasReader(`${dir.path}/pipe.ctl`);
        } catch {
          return false; // not made yet
        }
      };
      await waitUntil(ready, 15_000, "the server");
      const holder = spawn(Deno.execPath(), [
        "run",
        "--allow-all",
        projectPath("tests/fuzz_driver.ts"),
        "hold",
        dir.path,
        "pipe",
        "lines",
        "0",
        "0",
        "1000",
      ], { deadline: 60_000, stdin: "piped" });
      procs.push(holder);
      await waitUntil(() => holder.stdout().includes('"made"'), 45_000, "the holder");
      const send = await runCli("client.ts", dir.path, [
        "--shared",
        "--send",
        "still serving",
        "--timeout",
        "3000",
      ]).done;
      assertEquals([send.code, send.stdout], [0, "still serving\n"], server.stderr());
      assert(await isRunning(server), server.stderr());
      assertEquals(lastReport(holder)?.made, 1000, `sessions before a refusal: ${holder.stdout()}`);
      await holder.closeStdin();
      await holder.done;
      await stopServer(server);
    } finally {
      await cleanup(...procs);
    }
  },
});
