/**
 * A byte stream through an echo server and back: what `client.ts --stdin` runs.
 *
 * @module
 */
import { type FifoConn, wireOf } from "../session/connect.ts";
import { ReplyDecoder, type ReplyHandler } from "../session/session_protocol.ts";
import { abortable, explainTimeout } from "../fifo/abortable.ts";
import { concatBytes } from "../framing/concat_bytes.ts";
import { FrameDecoder } from "../framing/framing.ts";

/** Something to read bytes from, such as `Deno.stdin` or a `Deno.FsFile`. */
export interface FilterSource {
  /** Reads into `buffer`: the byte count, or `null` at end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Something to write bytes to, such as `Deno.stdout` or a `Deno.FsFile`. */
export interface FilterSink {
  /** Writes some of `bytes`: how many were taken. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Options for {@linkcode filter}. */
export interface FilterOptions {
  /**
   * Where the lines come from.
   *
   * @default {Deno.stdin}
   */
  input?: FilterSource;
  /**
   * Where the echo goes.
   *
   * @default {Deno.stdout}
   */
  output?: FilterSink;
  /**
   * Milliseconds to wait for more echo while some is due; `Infinity` waits for ever.
   *
   * @default {5000}
   */
  timeout?: number;
}

/** What {@linkcode filter} moved. */
export interface FilterStats {
  /** Bytes read from the input. */
  bytes: number;
  /** Lines (messages) sent, a last line without `\n` included. */
  lines: number;
}

const NEWLINE = 0x0a;
const CHUNK = 64 * 1024;

/**
 * Sends every line of `input` to the server as one message and writes the echo to
 * `output`, byte for byte: any bytes but `\n` pass unchanged, and a last line without
 * `\n` comes back without one.
 *
 * In `lines` and `raw` framing the wire bytes are the input bytes, so input passes through
 * in large chunks with no per-line work; `length` framing frames each line. Reading and
 * writing run at once (both pipe buffers would fill otherwise), with at most the
 * session's window of bytes unanswered. The connection must be fresh (nothing sent yet).
 *
 * Permissions: none beyond those of {@linkcode FifoConn}'s {@linkcode connect}.
 *
 * @example Usage
 * ```ts
 * import { connect } from "../session/connect.ts";
 * import { filter } from "./filter.ts";
 * import { serveEcho } from "../serve_echo.ts";
 * import assert from "node:assert/strict";
 * const dir = Deno.makeTempDirSync();
 * // "ok\n", then a last line without "\n" that is not even UTF-8.
 * Deno.writeFileSync(`${dir}/in`, new Uint8Array([0x6f, 0x6b, 0x0a, 0xff, 0xfe]));
 * const server = await serveEcho({ dir, name: "demo" });
 * {
 *   await using conn = await connect({ dir, name: "demo" });
 *   using input = Deno.openSync(`${dir}/in`);
 *   using output = Deno.openSync(`${dir}/out`, { write: true, createNew: true });
 *   const stats = await filter(conn, { input, output });
 *   assert.equal(stats.lines, 2);
 * }
 * assert.deepEqual(Deno.readFileSync(`${dir}/out`), Deno.readFileSync(`${dir}/in`));
 * await server.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 *
 * @param conn A connection to an echo server, nothing sent on it yet.
 * @param options Where to read and write.
 * @returns What went through.
 * @throws {Deno.errors.TimedOut} When echo is due and none comes within `timeout`.
 * @throws {Error} When the server ends the stream before echoing everything (it stopped,
 * or a line was longer than its `maxMessage`).
 */
export async function filter(conn: FifoConn, options: FilterOptions = {}): Promise<FilterStats> {
  const input = options.input ?? Deno.stdin;
  const output = options.output ?? Deno.stdout;
  const timeout = options.timeout ?? 5000;
  const wire = wireOf(conn);
  const length = conn.framing === "length";
  // Raw framing is a byte stream: nothing to complete at the end.
  const lines = conn.framing === "lines";
  const stats: FilterStats = { bytes: 0, lines: 0 };
  // The wire byte count of the line we added a "\n" to, so the echo's is dropped again.
  let strip = -1;
  let writerDone = false;
  let failure: unknown;
  // Wakes the side that waits: the reader for more in flight, the writer for room.
  let wake = Promise.withResolvers<void>();
  const nudge = () => {
    const woken = wake;
    wake = Promise.withResolvers<void>();
    woken.resolve();
  };

  const send = async (bytes: Uint8Array) => {
    // More than the window at once is allowed only alone in flight: a large length frame.
    while (
      conn.sentBytes > conn.receivedBytes &&
      conn.sentBytes - conn.receivedBytes + bytes.length > wire.window
    ) {
      if (failure) throw failure;
      await wake.promise;
    }
    conn.sentBytes += bytes.length;
    // Before the write: the reader must drain the echo while a long write waits for room.
    nudge();
    await wire.write(bytes);
  };

  const writer = async () => {
    const buffer = new Uint8Array(CHUNK);
    const framer = length ? new LengthFramer() : undefined;
    let last = NEWLINE;
    for (;;) {
      const n = await input.read(buffer);
      if (n === null) break;
      if (n === 0) continue;
      const chunk = buffer.subarray(0, n);
      stats.bytes += n;
      stats.lines += count(chunk, NEWLINE);
      last = chunk[n - 1];
      // Sent before the next read: the buffer is reused, and wire.write copies or waits.
      await send(framer ? framer.push(chunk) : chunk);
    }
    if (last !== NEWLINE) stats.lines++;
    if (last !== NEWLINE && (framer || lines)) {
      const tail = framer ? framer.finish() : Uint8Array.of(NEWLINE);
      strip = conn.sentBytes + tail.length;
      await send(tail);
    }
  };

  const records = wire.records ? new ReplyDecoder() : undefined;
  let reason: string | undefined;
  const handler = (pieces: Uint8Array[]): ReplyHandler => ({
    data: (bytes) => pieces.push(bytes),
    ack: () => {},
    reason: (text) => reason = text,
  });
  const reader = async () => {
    const buffer = new Uint8Array(CHUNK);
    const joined = new Uint8Array(CHUNK); // reused: written out before the next read
    const frames = length ? new LengthUnframer() : undefined;
    for (;;) {
      if (conn.receivedBytes === conn.sentBytes) {
        if (writerDone) return;
        await wake.promise;
        continue;
      }
      const want = Math.min(buffer.length, conn.sentBytes - conn.receivedBytes);
      const read = wire.replies.read(buffer.subarray(0, want));
      const n = timeout === Infinity
        ? await read
        : await abortable(read, AbortSignal.timeout(timeout)).catch((error) => {
          throw explainTimeout(
            error,
            timeout,
            `waiting for a reply on "${wire.replies.file.path}"`,
          );
        });
      if (n === null) {
        throw new Error(
          `The server closed the connection with ${
            conn.sentBytes - conn.receivedBytes
          } bytes of echo still due${reason ? ` (${reason})` : ""}`,
        );
      }
      // A session's replies come in records: only DATA is echo.
      const pieces: Uint8Array[] = [];
      if (records) records.push(buffer.subarray(0, n), handler(pieces));
      else pieces.push(buffer.subarray(0, n));
      const outs: Uint8Array[] = [];
      for (const piece of pieces) {
        conn.receivedBytes += piece.length;
        let out = piece;
        if (frames) out = frames.push(out, conn.receivedBytes === strip);
        else if (conn.receivedBytes === strip) out = out.subarray(0, out.length - 1);
        if (out.length) outs.push(out);
      }
      // One write per read, not one per reply record: each write is a runtime op.
      if (outs.length) await writeAll(output, concatBytes(outs, joined));
      nudge();
    }
  };

  const writing = writer().catch((error) => {
    failure = error;
    throw error;
  }).finally(() => {
    writerDone = true;
    nudge();
  });
  const reading = reader().catch((error) => {
    failure = error;
    nudge();
    throw error;
  });
  await Promise.all([writing, reading]);
  return stats;
}

async function writeAll(output: FilterSink, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await output.write(bytes.subarray(done));
}

function count(bytes: Uint8Array, byte: number): number {
  let n = 0;
  for (let at = bytes.indexOf(byte); at >= 0; at = bytes.indexOf(byte, at + 1)) n++;
  return n;
}

/** Cuts input into lines and frames each with its 4-byte length header. */
class LengthFramer {
  #carry: Uint8Array[] = [];

  push(chunk: Uint8Array): Uint8Array {
    const parts: Uint8Array[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
      this.#carry.push(chunk.subarray(start, nl));
      parts.push(this.#frame());
      start = nl + 1;
    }
    if (start < chunk.length) this.#carry.push(chunk.slice(start));
    return concatBytes(parts);
  }

  finish(): Uint8Array {
    return this.#frame();
  }

  #frame(): Uint8Array {
    const size = this.#carry.reduce((sum, part) => sum + part.length, 0);
    const frame = new Uint8Array(4 + size);
    new DataView(frame.buffer).setUint32(0, size);
    let at = 4;
    for (const part of this.#carry) {
      frame.set(part, at);
      at += part.length;
    }
    this.#carry = [];
    return frame;
  }
}

/** Turns echoed length frames back into lines. */
class LengthUnframer {
  // The server bounds what it echoes; any frame it sends back is one we sent.
  #decoder = new FrameDecoder("length", { maxMessage: 0x7fffffff });

  push(chunk: Uint8Array, last: boolean): Uint8Array {
    const parts: Uint8Array[] = [];
    this.#decoder.push(chunk, (_, payload) => {
      parts.push(payload.slice(), Uint8Array.of(NEWLINE));
    });
    if (last) parts.pop();
    return concatBytes(parts);
  }
}
