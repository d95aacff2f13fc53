/**
 * The library as other programs use it: listen() and connect() in one process, with
 * overlapping accept()/receive() calls, close() and aborts releasing them, backpressure
 * both ways, Web Streams, and large messages.
 *
 * Each test works in a private directory, bounds every wait with a signal, and cleans up
 * in `finally`.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { connect, FifoConn } from "../lib/session/connect.ts";
import { EchoServer, serveEcho } from "../lib/serve_echo.ts";
import { FifoListener, FifoServerConn, listen } from "../lib/session/listen.ts";
import { entries, requires, spawn, tempDir, waitUntil } from "./helpers.ts";

const test = requires("--allow-run");
const text = (bytes: Uint8Array | null) => bytes === null ? null : new TextDecoder().decode(bytes);
const bytesOf = (s: string) => new TextEncoder().encode(s);
/** A deadline for one test's waits: a hang fails the test instead of the whole run. */
const deadline = () => AbortSignal.timeout(20_000);

test("listen(): two overlapping accept() calls each get their own client, in call order", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path, name: "two" });
  const first = listener.accept({ signal: deadline() });
  const second = listener.accept({ signal: deadline() });
  await using a = await connect({ dir: tmp.path, name: "two", mode: "session" });
  const connA = (await first)!;
  await using b = await connect({ dir: tmp.path, name: "two", mode: "session" });
  const connB = (await second)!;
  assert(connA instanceof FifoServerConn && connB instanceof FifoServerConn);
  assert(connA.id !== connB.id);
  await a.send("from a");
  await b.send("from b");
  assertEquals(text(await connA.receive({ signal: deadline() })), "from a");
  assertEquals(text(await connB.receive({ signal: deadline() })), "from b");
});

test("listen(): two overlapping receive() calls get the next two messages, in call order", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path });
  await using client = await connect({ dir: tmp.path, mode: "session" });
  const conn = (await listener.accept({ signal: deadline() }))!;
  const calls = [conn.receive({ signal: deadline() }), conn.receive({ signal: deadline() })];
  await client.send("one");
  await client.send("two");
  assertEquals((await Promise.all(calls)).map(text), ["one", "two"]);
});

test("connect(): two overlapping receive() calls get the next two replies, in call order", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path });
  await using client = await connect({ dir: tmp.path, mode: "session" });
  const conn = (await listener.accept({ signal: deadline() }))!;
  const calls = [client.receive(), client.receive()];
  await conn.send("one");
  await conn.send("two");
  assertEquals((await Promise.all(calls)).map(text), ["one", "two"]);
});

test("close() releases every pending accept() and receive() with null", async () => {
  using tmp = tempDir();
  const listener = await listen({ dir: tmp.path });
  try {
    await using client = await connect({ dir: tmp.path, mode: "session" });
    const conn = (await listener.accept({ signal: deadline() }))!;
    const receives = [conn.receive(), conn.receive(), conn.receive()];
    const clientReceives = [client.receive(), client.receive()];
    conn.close();
    assertEquals(await Promise.all(receives), [null, null, null]);
    assertEquals(await conn.receive(), null);
    // The client sees its session end.
    assertEquals(await Promise.all(clientReceives), [null, null]);
    const accepts = [listener.accept(), listener.accept()];
    await listener.close();
    assertEquals(await Promise.all(accepts), [null, null]);
    assertEquals(await listener.accept(), null);
    assertEquals(await client.receive(), null);
  } finally {
    await listener.close();
  }
});

test("connect(): close() releases a pending receive() with null", async () => {
  using tmp = tempDir();
  await using _listener = await listen({ dir: tmp.path });
  const client = await connect({ dir: tmp.path, mode: "session", timeout: 20_000 });
  const pending = client.receive();
  await client.close();
  assertEquals(await pending, null);
});

test("an aborted accept() or receive() rejects with the reason and loses nothing", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path });
  const controller = new AbortController();
  const aborted = listener.accept({ signal: controller.signal });
  const kept = listener.accept({ signal: deadline() });
  controller.abort(new Error("gave up"));
  await rejects(aborted, { message: "gave up" });
  await rejects(listener.accept({ signal: AbortSignal.abort() }), { name: "AbortError" });
  await using client = await connect({ dir: tmp.path, mode: "session" });
  const conn = (await kept)!; // the client went to the call still waiting
  assert(conn !== null);
  const receiving = new AbortController();
  const abortedReceive = conn.receive({ signal: receiving.signal });
  receiving.abort(new Error("no more"));
  await rejects(abortedReceive, { message: "no more" });
  await client.send("kept");
  assertEquals(text(await conn.receive({ signal: deadline() })), "kept");
});

test("a 1,000,000-byte message in length framing goes through listen()/connect() both ways", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path, framing: "length" });
  await using client = await connect({ dir: tmp.path, framing: "length", mode: "session" });
  const conn = (await listener.accept({ signal: deadline() }))!;
  const big = new Uint8Array(1_000_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
  const sent = client.send(big);
  const got = (await conn.receive({ signal: deadline() }))!;
  await sent;
  assertEquals(got.length, big.length);
  assert(got.every((b, i) => b === big[i]), "the server got the bytes sent");
  const replied = conn.send(got);
  const back = (await client.receive({ timeout: 20_000 }))!;
  await replied;
  assertEquals(back.length, big.length);
  assert(back.every((b, i) => b === big[i]), "the client got the bytes replied");
});

test("connect({ mode: 'shared' }): sends split between a non-blocking and a blocking write keep their order", async () => {
  using tmp = tempDir();
  await using _server = await serveEcho({ dir: tmp.path, framing: "length" });
  await using client = await connect({ dir: tmp.path, framing: "length", mode: "shared" });
  // Each message is more than a pipe holds: its head goes in without blocking, its tail
  // after, from a runtime thread. Small ones between them take the non-blocking path only.
  const big = (seed: number) => {
    const bytes = new Uint8Array(200_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + seed) & 0xff;
    return bytes;
  };
  for (let round = 0; round < 3; round++) {
    await client.send(big(round));
    await client.send(bytesOf(`small ${round}`));
    const back = (await client.receive({ timeout: 20_000 }))!;
    const expected = big(round);
    assertEquals(back.length, expected.length);
    assert(back.every((b, i) => b === expected[i]), `round ${round}: the echo differs`);
    assertEquals(text(await client.receive({ timeout: 20_000 })), `small ${round}`);
  }
});
test("backpressure: a server that does not read never holds more than its window", async () => {
  using tmp = tempDir();
  const maxMessage = 16_384;
  await using listener = await listen({ dir: tmp.path, framing: "length", maxMessage });
  await using client = await connect({
    dir: tmp.path,
    framing: "length",
    maxMessage,
    mode: "session",
  });
  const conn = (await listener.accept({ signal: deadline() }))!;
  const message = new Uint8Array(10_000).fill(0x41);
  const total = 200; // 2 MB: over twenty windows
  let sent = 0;
  const sending = (async () => {
    for (let i = 0; i < total; i++) {
      await client.send(message);
      sent++;
    }
  })();
  // The client stops: its sends wait for credit the server does not give while not reading.
  let last = -1;
  await waitUntil(
    () => {
      const stalled = sent === last && sent < total;
      last = sent;
      return stalled && conn.bufferedBytes > 0;
    },
    10_000,
    "the client's send() to wait",
  );
  assert(sent < total, `all ${total} sends finished against a server that does not read`);
  assert(
    conn.bufferedBytes <= conn.window,
    `${conn.bufferedBytes} bytes buffered, over the window of ${conn.window}`,
  );
  // Reading releases the client; everything arrives, in order, bounded all the way.
  let maxBuffered = 0;
  for (let i = 0; i < total; i++) {
    maxBuffered = Math.max(maxBuffered, conn.bufferedBytes);
    const got = await conn.receive({ signal: deadline() });
    assertEquals(got?.length, message.length);
  }
  await sending;
  assertEquals(sent, total);
  assert(maxBuffered <= conn.window, `${maxBuffered} bytes buffered at most, over the window`);
});

test("backpressure: a server's send() waits while the client does not read", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path, framing: "length" });
  await using client = await connect({ dir: tmp.path, framing: "length", mode: "session" });
  const conn = (await listener.accept({ signal: deadline() }))!;
  const message = new Uint8Array(32_768);
  let sent = 0;
  const sending = (async () => {
    for (let i = 0; i < 100; i++) {
      await conn.send(message);
      sent++;
    }
  })();
  let last = -1;
  await waitUntil(
    () => {
      const stalled = sent === last && sent > 0;
      last = sent;
      return stalled;
    },
    10_000,
    "the server's send() to wait",
  );
  assert(sent < 100, "every send finished though the client read nothing");
  for (let i = 0; i < 100; i++) {
    assertEquals((await client.receive({ timeout: 20_000 }))?.length, 32_768);
  }
  await sending;
});

test("streams: pipeThrough on the server, pipeTo and readable on the client", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path });
  const served = (async () => {
    const conn = (await listener.accept({ signal: deadline() }))!;
    const upper = new TransformStream<Uint8Array, Uint8Array>({
      transform: (chunk, out) => out.enqueue(bytesOf(text(chunk)!.toUpperCase())),
    });
    await conn.readable.pipeThrough(upper).pipeTo(conn.writable);
  })();
  const client: FifoConn = await connect({ dir: tmp.path, mode: "session" });
  try {
    const words = Array.from({ length: 50 }, (_, i) => `word ${i}`);
    await ReadableStream.from(words.map(bytesOf)).pipeTo(client.writable);
    const replies: string[] = [];
    for await (const reply of client.readable) {
      replies.push(text(reply)!);
      if (replies.length === words.length) break; // cancels the stream: closes the client
    }
    assertEquals(replies, words.map((w) => w.toUpperCase()));
  } finally {
    await client.close();
  }
  await served; // the client left: the server's readable ended, its pipe finished
});

test("a session the server drops is told why", async () => {
  using tmp = tempDir();
  await using listener = await listen({ dir: tmp.path, maxMessage: 100 });
  await using client = await connect({ dir: tmp.path, mode: "session" });
  const conn = (await listener.accept({ signal: deadline() }))!;
  await client.send("x".repeat(500));
  assertEquals(await conn.receive({ signal: deadline() }), null);
  assertEquals(await client.receive(), null);
  assert(/longer than|exceeds|too long/i.test(client.closeReason ?? ""), client.closeReason);
});

test("nothing internal is public: no constructors, no internal methods", () => {
  // deno-lint-ignore no-explicit-any
  const Listener = FifoListener as any;
  // deno-lint-ignore no-explicit-any
  const Conn = FifoServerConn as any;
  for (const Class of [Listener, Conn, FifoConn, EchoServer] as (new () => unknown)[]) {
    try {
      new Class();
      assert(false, `${Class.name} could be constructed`);
    } catch (error) {
      assert(error instanceof TypeError && /Illegal constructor/.test(error.message));
    }
  }
  for (const name of ["attach", "offer"]) assert(!(name in Listener.prototype), name);
  for (const name of ["push", "end"]) assert(!(name in Conn.prototype), name);
  for (const name of ["start", "countSession"]) assert(!(name in EchoServer.prototype), name);
});

test("without --allow-run, serveEcho(), listen() and a session connect() fail at once, naming the flag", async () => {
  using tmp = tempDir();
  const script = `${tmp.path}/no_run.ts`;
  const lib = new URL("../lib/mod.ts", import.meta.url).href;
  const dir = JSON.stringify(tmp.path);
  Deno.writeTextFileSync(
    script,
    `import { connect, listen, serveEcho } from "${lib}";\n` +
      `for (const start of [() => serveEcho({ dir: ${dir} }), () => listen({ dir: ${dir} }), ` +
      `() => connect({ dir: ${dir}, mode: "session" })]) {\n` +
      `  try { await start(); console.log("started"); } catch (e) { console.log(e.name + ": " + e.message); }\n` +
      `}\n`,
  );
  await using proc = spawn(Deno.execPath(), [
    "run",
    "--allow-read",
    `--allow-write=${tmp.path}`,
    script,
  ], { deadline: 20_000 });
  const { code, stdout } = await proc.done;
  assertEquals(code, 0);
  assertEquals(
    stdout,
    [
      `NotCapable: Cannot serve in "${tmp.path}": making FIFOs needs run access to "mkfifo"; ` +
      "run Deno with --allow-run=mkfifo",
      `NotCapable: Cannot listen in "${tmp.path}": making FIFOs needs run access to "mkfifo"; ` +
      "run Deno with --allow-run=mkfifo",
      `NotCapable: Cannot open a session on "${tmp.path}/pipe.ctl": making FIFOs needs run ` +
      'access to "mkfifo"; run Deno with --allow-run=mkfifo',
      "",
    ].join("\n"),
  );
  assertEquals(entries(tmp.path), ["no_run.ts"]);
});

test("listen(): two started at the same moment on one name, exactly one serves", async () => {
  using tmp = tempDir();
  const results = await Promise.allSettled([
    listen({ dir: tmp.path, name: "race" }),
    listen({ dir: tmp.path, name: "race" }),
  ]);
  const listeners = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
  const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason);
  try {
    assertEquals(listeners.length, 1, "both listeners started: one was replaced unseen");
    assert(refused[0] instanceof Deno.errors.AddrInUse, String(refused[0]));
    // The one left really serves its name.
    await using client = await connect({ dir: tmp.path, name: "race", mode: "session" });
    const conn = (await listeners[0].accept({ signal: deadline() }))!;
    await client.send("still here");
    assertEquals(text(await conn.receive({ signal: deadline() })), "still here");
  } finally {
    for (const listener of listeners) await listener.close();
  }
  assertEquals(entries(tmp.path), []);
});

test("listen() refuses a name an echo server already serves", async () => {
  using tmp = tempDir();
  await using _server = await serveEcho({ dir: tmp.path, name: "taken" });
  await rejects(listen({ dir: tmp.path, name: "taken" }), Deno.errors.AddrInUse);
});

test("listen(): after close(), accept() is null even for a client that arrived unaccepted", async () => {
  using tmp = tempDir();
  const listener = await listen({ dir: tmp.path });
  try {
    await using client = await connect({ dir: tmp.path, mode: "session" });
    await client.send("hello"); // the session exists: its HELLO was answered
    await listener.close();
    assertEquals(await listener.accept(), null);
    assertEquals(await client.receive(), null); // its session ended with the listener
  } finally {
    await listener.close();
  }
});
