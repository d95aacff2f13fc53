/**
 * Our side of the benchmark's workloads: a client built on the library's blocking I/O
 * (`FifoFile.readSync`/`writeAllSync`), the same argv and JSON line as `c_echo.c`.
 *
 *     load.ts pingpong  IN OUT COUNT SIZE
 *     load.ts pipelined IN OUT COUNT SIZE
 *     load.ts bulk      IN OUT TOTAL CHUNK raw|length
 *     load.ts conn      IN OUT COUNT SIZE      ping-pong through FifoConn on the plain pair
 *     load.ts session   IN OUT COUNT SIZE      ping-pong through FifoConn in a session
 *
 * The writer of `pipelined` and `bulk` runs on a worker (`load_writer.ts`) so reading and
 * writing overlap, as they must once both 64 KiB pipe buffers fill; `pipelined` batches
 * many messages per write, the point of framing.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { connect } from "../lib/session/connect.ts";
import { FifoFile } from "../lib/fifo/fifo_file.ts";

/** Bytes of message `i` of `size`: a run of letters ending in `\n`. */
export function message(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size - 1; i++) bytes[i] = 97 + (i % 26);
  bytes[size - 1] = 0x0a;
  return bytes;
}

/**
 * The unit a streamed workload repeats, one write's worth: a `pipelined` message, or a
 * `bulk` chunk (with its 4-byte header in `length` framing).
 */
export function streamUnit(mode: "pipelined" | "bulk", size: number, framing: string): Uint8Array {
  const unit = message(size);
  if (mode === "bulk" && framing === "length") new DataView(unit.buffer).setUint32(0, size - 4);
  return unit;
}

function fail(text: string): never {
  console.error(`error: ${text}`);
  Deno.exit(1);
}

function readExactly(input: FifoFile, buffer: Uint8Array, size: number): void {
  for (let got = 0; got < size;) {
    const n = input.readSync(buffer.subarray(got, size));
    if (n === null) fail("the server closed the stream");
    got += n;
  }
}

function pingpong(inPath: string, outPath: string, count: number, size: number) {
  using output = FifoFile.openSync(inPath, { access: "write" });
  using input = FifoFile.openSync(outPath, { access: "read" });
  const sent = message(size);
  const back = new Uint8Array(size);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    output.writeAllSync(sent);
    readExactly(input, back, size);
    for (let j = 0; j < size; j++) if (back[j] !== sent[j]) fail(`echo ${i} differs`);
  }
  const ms = performance.now() - start;
  return { ops: count, bytes: count * size, ms };
}

async function viaConn(inPath: string, count: number, size: number, mode: "shared" | "session") {
  // The server's name is the input FIFO's, less ".in": DIR/NAME.in.
  const name = basename(inPath).replace(/\.in$/, "");
  await using conn = await connect({ dir: dirname(inPath), name, mode });
  const payload = message(size).subarray(0, size - 1);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await conn.send(payload);
    const reply = await conn.receive();
    if (reply?.length !== payload.length) fail("echo differs");
  }
  return { ops: count, bytes: count * size, ms: performance.now() - start };
}

async function streamed(
  mode: "pipelined" | "bulk",
  inPath: string,
  outPath: string,
  a: number,
  b: number,
  framing: string,
) {
  // The seed's order (the server's input, then its output) so that any server gets going;
  // the worker then opens a writer end of its own, which no longer waits.
  using hold = FifoFile.openSync(inPath, { access: "write" });
  using input = FifoFile.openSync(outPath, { access: "read" });
  const total = mode === "pipelined" ? a * b : a;
  const worker = new Worker(new URL("./load_writer.ts", import.meta.url), { type: "module" });
  const ready = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<void>();
  worker.onmessage = (e) => (e.data === "ready" ? ready : finished).resolve();
  worker.onerror = (e) => {
    ready.reject(new Error(e.message));
    finished.reject(new Error(e.message));
  };
  finished.promise.catch(() => {}); // reported by `await ready.promise` or below
  // The worker loads and opens its end untimed; the clock starts at "go".
  worker.postMessage({ mode, inPath, a, b, framing });
  await ready.promise;
  const start = performance.now();
  worker.postMessage("go");
  const buffer = new Uint8Array(65536);
  // Spot checks, cheap enough not to slow the reader: every read's first and last byte and
  // one in every 4093 must be the stream's byte at that offset; the count must be exact.
  const unit = streamUnit(mode, b, framing);
  const check = (at: number, offset: number) => {
    if (buffer[at] !== unit[offset % unit.length]) fail(`echo differs at byte ${offset}`);
  };
  let got = 0;
  while (got < total) {
    const n = input.readSync(buffer.subarray(0, Math.min(buffer.length, total - got)));
    if (n === null) fail(`the server closed the stream after ${got} of ${total} bytes`);
    for (let i = 0; i < n; i += 4093) check(i, got + i);
    check(n - 1, got + n - 1);
    got += n;
  }
  const ms = performance.now() - start;
  await finished.promise;
  worker.terminate();
  hold.close();
  const ops = mode === "pipelined" ? a : Math.ceil(total / b);
  return { ops, bytes: total, ms };
}

async function main(args: string[]) {
  const [mode, inPath, outPath, a, b, framing] = args;
  const count = Number(a);
  const size = Number(b);
  if (!inPath || !outPath || !(count > 0) || !(size > 0)) {
    fail("usage: load.ts pingpong|pipelined|bulk|conn|session IN OUT COUNT SIZE [raw|length]");
  }
  let result: { ops: number; bytes: number; ms: number };
  if (mode === "pingpong") {
    // A writer opening first is the client's half of the seed order; the server holds the
    // input FIFO's reader, so this never waits long.
    result = pingpong(inPath, outPath, count, size);
  } else if (mode === "conn" || mode === "session") {
    result = await viaConn(inPath, count, size, mode === "conn" ? "shared" : "session");
  } else if (mode === "pipelined" || mode === "bulk") {
    result = await streamed(mode, inPath, outPath, count, size, framing ?? "raw");
  } else {
    fail(`unknown mode "${mode}"`);
  }
  console.log(
    JSON.stringify({ ops: result.ops, bytes: result.bytes, ns: Math.round(result.ms * 1e6) }),
  );
}

if (import.meta.main) await main(Deno.args);
