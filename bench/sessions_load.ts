/**
 * Workload D's driver: one process holding K session connections to a running server,
 * each sending COUNT checked messages with at most WINDOW unanswered (1 = ping-pong).
 *
 *     deno run --allow-read=DIR --allow-write=DIR --allow-run=mkfifo bench/sessions_load.ts \
 *       --dir DIR --name NAME --conns K --count COUNT [--size 64] [--window 1] [--wait]
 *
 * Every connection is opened first (`connect({ mode: "session" })`); then the driver prints
 * `{"ready":K}` and, with `--wait`, waits for a line on standard input: the start barrier
 * the parent (`bench/bench.ts`) releases once every driver is ready, so that connecting is
 * never timed. Then all connections run at once and the driver prints one JSON line:
 *
 *     {"conns":K,"messages":N,"bytes":B,"start":T0,"end":T1}
 *
 * `start` and `end` are wall-clock milliseconds (`performance.timeOrigin + now()`), so the
 * parent can take the aggregate over many processes as total messages / (last end - first
 * start). Every echo is compared byte for byte with what was sent (the connection index and
 * the sequence number are in each message); any mismatch or error exits 1.
 *
 * Keep K at 16 or fewer: every connection parks one FIFO read on the runtime's blocking
 * pool, and a Deno process stalls near 32 of them.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect, type FifoConn } from "../lib/session/connect.ts";

function fail(text: string): never {
  console.error(`error: ${text}`);
  Deno.exit(1);
}

function positive(flag: string, text: string | undefined, fallback?: number): number {
  if (text === undefined && fallback !== undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) fail(`--${flag} needs a positive whole number`);
  return value;
}

/** Wall-clock milliseconds, comparable between processes. */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Writes message `seq` of connection `conn` into `into` (its payload, without the `\n`):
 * `conn:seq:` then letters up to the size, so every message of the run is distinct.
 */
function fill(into: Uint8Array, template: Uint8Array, conn: number, seq: number): void {
  into.set(template);
  const tag = `${conn}:${seq}:`;
  for (let i = 0; i < tag.length && i < into.length; i++) into[i] = tag.charCodeAt(i);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function drive(
  conn: FifoConn,
  index: number,
  count: number,
  size: number,
  window: number,
): Promise<void> {
  const template = new Uint8Array(size - 1);
  for (let i = 0; i < template.length; i++) template[i] = 97 + (i % 26);
  const out = new Uint8Array(size - 1);
  const expected = new Uint8Array(size - 1);
  let sent = 0;
  const sendNext = () => {
    fill(out, template, index, sent++);
    return conn.send(out);
  };
  while (sent < Math.min(window, count)) await sendNext();
  for (let got = 0; got < count; got++) {
    const reply = await conn.receive({ timeout: 30_000 });
    if (reply === null) throw new Error(`connection ${index}: the server ended the session`);
    fill(expected, template, index, got);
    if (!equal(reply, expected)) {
      throw new Error(`connection ${index}: echo ${got} differs from what was sent`);
    }
    if (sent < count) await sendNext();
  }
}

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      dir: { type: "string" },
      name: { type: "string" },
      conns: { type: "string" },
      count: { type: "string" },
      size: { type: "string" },
      window: { type: "string" },
      wait: { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (!values.dir || !values.name) fail("--dir and --name are required");
  const conns = positive("conns", values.conns);
  const count = positive("count", values.count);
  const size = positive("size", values.size, 64);
  const window = positive("window", values.window, 1);
  if (size < 2) fail("--size must be at least 2 (one byte and the newline)");

  const open: FifoConn[] = [];
  try {
    // One at a time: every connect runs mkfifo twice, and the server answers in order.
    for (let i = 0; i < conns; i++) {
      open.push(
        await connect({ dir: values.dir, name: values.name, mode: "session", timeout: 30_000 }),
      );
    }
    console.log(JSON.stringify({ ready: conns }));
    if (values.wait) {
      const reader = Deno.stdin.readable.getReader();
      const { done } = await reader.read();
      reader.releaseLock();
      if (done) fail("standard input closed before the start signal");
    }
    const start = wallNow();
    await Promise.all(open.map((conn, i) => drive(conn, i, count, size, window)));
    const end = wallNow();
    const messages = conns * count;
    console.log(JSON.stringify({ conns, messages, bytes: messages * size, start, end }));
  } finally {
    await Promise.all(open.map((conn) => conn.close()));
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    fail((error as Error)?.message ?? String(error));
  }
}
