/**
 * A load driver: many `connect()` sessions in one process, each sending random messages
 * (random sizes and bytes, framing-valid) and checking every echo byte for byte.
 *
 *     soak_client.ts --dir DIR --name NAME --framing lines|length|raw [options]
 *
 * Options: `--clients N` (connections, default 4; keep it at 16 or fewer: Deno parks one
 * runtime thread per pending FIFO read and stalls near 32), `--seconds S` (run time,
 * default 10; SIGTERM/SIGINT also end it gracefully), `--seed N`, `--max-size BYTES`
 * (largest message, default 65536), `--timeout MS` (per reply, default 5000).
 *
 * Prints one JSON line per second (`{"t":…,"sent":…,"echoed":…,"inFlight":…}`) and a last
 * one with `"final": true` and `"lost"`. Exits 0 when every message sent was echoed intact.
 * On the first error (the server gone, a timeout, a corrupt echo) the other sessions wind
 * down and close, then it prints `{"error": …}` and exits 1.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect, type FifoConn } from "../lib/session/connect.ts";
import type { Framing } from "../lib/framing/framing.ts";
import { CONNECTION_OPTIONS } from "./driver_options.ts";
import { firstDifference } from "./first_difference.ts";
import { Rng } from "./rng.ts";

interface Stats {
  sent: number;
  echoed: number;
  bytes: number;
  corrupt: number;
  connections: number;
}

const stats: Stats = {
  sent: 0,
  echoed: 0,
  bytes: 0,
  corrupt: 0,
  connections: 0,
};
const started = performance.now();

/** A progress line; the last one (`final`) counts what was sent and never echoed as lost. */
function line(extra: Record<string, unknown> = {}): string {
  const t = Math.round(performance.now() - started);
  const unanswered = stats.sent - stats.echoed;
  const tail = extra.final ? { lost: unanswered } : { inFlight: unanswered };
  return JSON.stringify({ t, ...stats, ...tail, ...extra });
}

function die(message: string): never {
  console.log(line({ error: message }));
  console.error(`error: ${message}`);
  Deno.exit(1);
}

/** A message valid in `framing`: any bytes but `\n` in lines; at least one byte in raw. */
function message(rng: Rng, framing: Framing, maxSize: number): Uint8Array {
  // Log-uniform sizes: mostly small, now and then up to maxSize.
  const size = Math.min(maxSize, Math.floor(2 ** (rng.float() * Math.log2(maxSize + 1))));
  const bytes = new Uint8Array(framing === "raw" ? Math.max(1, size) : size);
  const text = rng.chance(0.5);
  for (let i = 0; i < bytes.length; i++) {
    let b = text ? 32 + (rng.u32() % 95) : rng.u32() & 0xff;
    if (framing === "lines" && b === 0x0a) b = 0;
    bytes[i] = b;
  }
  return bytes;
}

async function receiveExactly(conn: FifoConn, length: number, timeout: number) {
  // Raw replies come back cut where the server's reads fell: gather the bytes.
  const parts: Uint8Array[] = [];
  let got = 0;
  while (got < length) {
    const reply = await conn.receive({ timeout });
    if (reply === null) throw new Error("The server closed the connection");
    parts.push(reply);
    got += reply.length;
  }
  const out = new Uint8Array(got);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

type Options = { dir: string; name: string; framing: Framing; timeout: number; maxSize: number };

async function client(options: Options, rng: Rng, stopping: () => boolean): Promise<void> {
  await using conn = await connect({
    dir: options.dir,
    name: options.name,
    framing: options.framing,
    mode: "session",
    timeout: options.timeout,
  });
  stats.connections++;
  while (!stopping()) {
    // A few messages in flight at once, then their echoes, checked byte for byte.
    const batch = Array.from(
      { length: rng.int(1, 4) },
      () => message(rng, options.framing, options.maxSize),
    );
    for (const m of batch) {
      await conn.send(m);
      stats.sent++;
    }
    if (options.framing === "raw") {
      const want = batch.reduce((n, m) => n + m.length, 0);
      const got = await receiveExactly(conn, want, options.timeout);
      let at = 0;
      for (const m of batch) {
        if (firstDifference(m, got.subarray(at, at + m.length)) >= 0) stats.corrupt++;
        at += m.length;
      }
    } else {
      for (const m of batch) {
        const reply = await conn.receive({ timeout: options.timeout });
        if (reply === null) throw new Error("The server closed the connection");
        if (firstDifference(m, reply) >= 0) stats.corrupt++;
      }
    }
    stats.echoed += batch.length;
    stats.bytes += batch.reduce((n, m) => n + m.length, 0);
    if (stats.corrupt) throw new Error(`${stats.corrupt} echo(es) differ from what was sent`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      ...CONNECTION_OPTIONS,
      clients: { type: "string", default: "4" },
      seconds: { type: "string", default: "10" },
      "max-size": { type: "string", default: "65536" },
      timeout: { type: "string", default: "5000" },
    },
  });
  if (!values.dir) die("--dir is required");
  const options = {
    dir: values.dir,
    name: values.name,
    framing: values.framing as Framing,
    timeout: Number(values.timeout),
    maxSize: Number(values["max-size"]),
  };
  const deadline = performance.now() + Number(values.seconds) * 1000;
  let stopped = false;
  const stop = () => stopped = true;
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  let failure: string | undefined;
  const stopping = () => stopped || failure !== undefined || performance.now() > deadline;
  const ticker = setInterval(() => console.log(line()), 1000);
  const seed = Number(values.seed);
  // On the first error every other client winds down and closes its session (exiting at
  // once could cut a connect() short between its mkfifo and its cleanup list).
  await Promise.all(
    Array.from(
      { length: Number(values.clients) },
      (_, i) =>
        client(options, new Rng(seed * 1000 + i), stopping).catch((error) => {
          failure ??= (error as Error)?.message ?? String(error);
        }),
    ),
  );
  clearInterval(ticker);
  Deno.removeSignalListener("SIGTERM", stop);
  Deno.removeSignalListener("SIGINT", stop);
  if (failure !== undefined) die(failure);
  console.log(line({ final: true }));
}

if (import.meta.main) await main();
