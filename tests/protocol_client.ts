/**
 * A session client spoken at the protocol level, with blocking calls: the fuzz driver's
 * way to write malformed and well-formed records on `NAME.ctl` and read replies byte for
 * byte, which `connect()` (correct by construction) cannot do.
 *
 * For subprocesses with nothing else to do: every wait blocks the thread.
 *
 * @module
 */
import { concatBytes } from "../lib/framing/concat_bytes.ts";
import { FifoFile, PIPE_BUF } from "../lib/fifo/fifo_file.ts";
import type { Framing } from "../lib/framing/framing.ts";
import { makeFifo, removeFifo } from "../lib/fifo/make_fifo.ts";
import { encodeRecord, RecordType, sessionPrefix } from "../lib/session/session_protocol.ts";

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms`: the back-off of a poll loop in a driver subprocess. */
export function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function fail(message: string): never {
  throw new Error(message);
}

/** A session directory of our own that we reuse for many sessions in a row. */
export class ProtocolClient implements Disposable {
  readonly dir: string;
  readonly reply: FifoFile;
  readonly alive: FifoFile;
  readonly ctl: FifoFile;
  #made: [string, Deno.FileInfo][];
  #handshakeTail: Uint8Array = new Uint8Array(0);
  #ctlBytes = 0;

  private constructor(dir: string, made: [string, Deno.FileInfo][], files: FifoFile[]) {
    this.dir = dir;
    this.#made = made;
    [this.alive, this.reply, this.ctl] = files;
  }

  static async open(dir: string, name: string): Promise<ProtocolClient> {
    const sessionDir = Deno.makeTempDirSync({ dir, prefix: sessionPrefix(name) });
    Deno.chmodSync(sessionDir, 0o700);
    const made: [string, Deno.FileInfo][] = [];
    for (const file of ["reply", "alive"]) {
      made.push([`${sessionDir}/${file}`, await makeFifo(`${sessionDir}/${file}`)]);
    }
    const files = [
      FifoFile.openSync(`${sessionDir}/alive`, { access: "readwrite" }),
      FifoFile.openSync(`${sessionDir}/reply`, { access: "read", nonblocking: true }),
      FifoFile.openSync(`${dir}/${name}.ctl`, { access: "write", nonblocking: true }),
    ];
    return new ProtocolClient(sessionDir, made, files);
  }

  /** How many bytes this client wrote on the request FIFO so far. */
  get ctlBytes(): number {
    return this.#ctlBytes;
  }

  /** Writes bytes on the request FIFO, waiting while it is full. */
  writeCtl(bytes: Uint8Array): void {
    this.#ctlBytes += bytes.length;
    for (let done = 0; done < bytes.length;) {
      const n = this.ctl.tryWrite(bytes.subarray(done));
      done += n;
      if (!n) sleepMs(0.2);
    }
  }

  /** Writes packed records in atomic pieces that end on record boundaries. */
  writeRecords(records: Uint8Array, ends: number[]): void {
    this.#ctlBytes += records.length;
    let start = 0;
    for (let i = 0; i < ends.length;) {
      let end = ends[i++];
      while (i < ends.length && ends[i] - start <= PIPE_BUF) end = ends[i++];
      const piece = records.subarray(start, end);
      while (this.ctl.tryWrite(piece) === 0) sleepMs(0.2);
      start = end;
    }
  }

  /**
   * Sends a HELLO and waits up to `ms` for the handshake.
   *
   * @returns The session id, or `undefined` when no answer came (the HELLO was dropped).
   */
  hello(framing: Framing, ms: number): number | undefined {
    const body = new TextEncoder().encode(JSON.stringify({ v: 1, dir: this.dir, framing }));
    this.writeCtl(encodeRecord(RecordType.HELLO, 0, body));
    const buffer = new Uint8Array(PIPE_BUF);
    let got: Uint8Array = new Uint8Array(0);
    const deadline = performance.now() + ms;
    for (let wait = 0.02;; wait = Math.min(wait * 2, 2)) {
      const n = this.reply.readSync(buffer);
      if (n) {
        got = concatBytes([got, buffer.subarray(0, n)]);
        const nl = got.indexOf(10);
        if (nl >= 0) {
          const answer = JSON.parse(new TextDecoder().decode(got.subarray(0, nl)));
          if (typeof answer.id !== "number") fail(`Handshake refused: ${JSON.stringify(answer)}`);
          this.#handshakeTail = got.slice(nl + 1);
          return answer.id;
        }
        continue;
      }
      if (performance.now() > deadline) return undefined;
      sleepMs(wait);
    }
  }

  /** Reads replies until `want` bytes arrived, or until end of file when `want` is omitted. */
  readReplies(want: number | undefined, ms: number): Uint8Array {
    const parts = [this.#handshakeTail];
    this.#handshakeTail = new Uint8Array(0);
    let total = parts[0].length;
    const buffer = new Uint8Array(65536);
    const deadline = performance.now() + ms;
    for (let wait = 0.02; want === undefined || total < want; wait = Math.min(wait * 2, 2)) {
      const n = this.reply.readSync(buffer);
      if (n === null) break;
      if (n) {
        parts.push(buffer.slice(0, n));
        total += n;
        wait = 0.01;
        continue;
      }
      if (performance.now() > deadline) {
        fail(`Timed out after ${ms} ms with ${total} reply bytes, want ${want ?? "end of file"}`);
      }
      sleepMs(wait);
    }
    return concatBytes(parts);
  }

  /** Ends session `id` and waits for the server to close its end. */
  bye(id: number): Uint8Array {
    this.writeCtl(encodeRecord(RecordType.BYE, id, new Uint8Array(0)));
    return this.readReplies(undefined, 10_000);
  }

  [Symbol.dispose](): void {
    for (const file of [this.alive, this.reply, this.ctl]) file.close();
    for (const [path, info] of this.#made) removeFifo(path, info);
    Deno.removeSync(this.dir);
  }
}
