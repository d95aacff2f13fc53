import { abortable, explainTimeout } from "../fifo/abortable.ts";
import { currentUid } from "../fifo/current_uid.ts";
import { FifoFile, isServed, PIPE_BUF } from "../fifo/fifo_file.ts";
import {
  DEFAULT_MAX_MESSAGE,
  encodeFrame,
  FrameDecoder,
  type Framing,
} from "../framing/framing.ts";
import { makeFifo, removeFifo } from "../fifo/make_fifo.ts";
import { assertMkfifoAllowed } from "../fifo/mkfifo_permission.ts";
import { sameFile } from "../fifo/same_file.ts";
import { checkServerDir, serverPlace } from "../fifo/server_place.ts";
import { messageReadable, messageWritable } from "./message_streams.ts";
import { ReplyReader } from "./reply_reads.ts";
import {
  encodeData,
  encodeRecord,
  type Handshake,
  type Hello,
  RecordType,
  ReplyDecoder,
  sessionPrefix,
} from "./session_protocol.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /**
   * The directory of the server's FIFOs.
   *
   * @default {"/tmp"}
   */
  dir?: string;
  /**
   * The server's FIFO base name.
   *
   * @default {"pipe"}
   */
  name?: string;
  /**
   * The framing; it must match the server's (a session server refuses a mismatch).
   *
   * @default {"lines"}
   */
  framing?: Framing;
  /**
   * The largest reply accepted, in bytes.
   *
   * @default {1048576}
   */
  maxMessage?: number;
  /**
   * `session`: a private session (needs a session server and `--allow-run=mkfifo`);
   * `shared`: the plain `NAME.in`/`NAME.out` pair, one client at a time, as the seed does;
   * `auto`: a session when the server offers one, else the plain pair.
   *
   * @default {"auto"}
   */
  mode?: "auto" | "session" | "shared";
  /**
   * Refuse a plain pair whose FIFOs other users may read. Without it such FIFOs (the
   * seed's server makes them 0644 under umask 022) are used and `onWarning` is told who
   * can read them. FIFOs that others may write, that are not ours, or that are not FIFOs
   * are refused either way.
   *
   * @default {false}
   */
  strict?: boolean;
  /**
   * Receives one line about what is allowed but unsafe (see `strict`).
   *
   * @default {console.warn}
   */
  onWarning?: (message: string) => void;
  /**
   * Milliseconds to wait for the server: per open, and per {@linkcode FifoConn.receive}
   * unless that call says otherwise.
   *
   * @default {5000}
   */
  timeout?: number;
  /**
   * Aborts the connection attempt.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** Options for {@linkcode FifoConn.receive}. */
export interface ReceiveOptions {
  /**
   * Milliseconds to wait for a message; the read stays pending for the next call, so
   * nothing is lost by timing out.
   *
   * @default {the connection's timeout}
   */
  timeout?: number;
  /**
   * Aborts the wait (the read stays pending for the next call).
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** How a connection reaches the server (internal). */
export interface Transport {
  /** Unanswered bytes allowed in flight. */
  window: number;
  /** Replies come as reply records; `ack`: credit comes in ACK records, not as replies. */
  records?: { ack: boolean };
  write(wire: Uint8Array): Promise<void>;
  /** Reads the replies, parking few threads however many connections the process holds. */
  replies: ReplyReader;
  /** Closes everything; `readerParked` says a read of `replies` is still pending. */
  close(readerParked: boolean): void;
}

const token = Symbol("fifo internal");

/** Makes a connection; only connect() may. */
let createConn: (
  mode: "session" | "shared",
  framing: Framing,
  transport: Transport,
  options: { maxMessage: number; timeout: number; early?: Uint8Array },
) => FifoConn;

// Set by FifoConn's static block: how wireOf() reaches its private transport.
let wireAccess: (conn: FifoConn) => Transport;

/**
 * A client's connection to an echo server: send messages, receive the replies.
 *
 * In a session (the default where offered) the replies are this client's own, whatever
 * other clients do; on the shared plain pair, as in the seed, clients must take turns.
 *
 * Permissions: those of {@linkcode connect}, which makes it.
 *
 * @example Send a stream of messages through `writable`, read the echoes from `readable`
 * ```ts
 * import { connect, serveEcho } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await using _server = await serveEcho({ dir, logMessages: false });
 *   await using conn = await connect({ dir, timeout: 2000 });
 *   await ReadableStream.from(["a", "b"].map((t) => new TextEncoder().encode(t)))
 *     .pipeTo(conn.writable);
 *   const replies = [];
 *   for await (const reply of conn.readable) {
 *     replies.push(new TextDecoder().decode(reply));
 *     if (replies.length === 2) break;
 *   }
 *   assert.deepEqual(replies, ["a", "b"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class FifoConn implements AsyncDisposable, AsyncIterable<Uint8Array> {
  /** `session` or `shared`. */
  readonly mode: "session" | "shared";
  /** The framing in use. */
  readonly framing: Framing;
  /** Wire bytes sent. */
  sentBytes = 0;
  /** Wire bytes received. */
  receivedBytes = 0;
  #transport: Transport;
  #decoder: FrameDecoder;
  #queue: Uint8Array[] = [];
  #buffer: Uint8Array;
  #pending: Promise<void> | undefined;
  #ended = false;
  #error: unknown;
  #timeout: number;
  #closed = false;
  #replies: ReplyDecoder | undefined;
  #acked = 0;
  #closeReason: string | undefined;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  static {
    createConn = (mode, framing, transport, options) =>
      new FifoConn(token, mode, framing, transport, options);
    wireAccess = (conn) => {
      if (conn.#closed) throw new Deno.errors.BadResource("Cannot use a closed connection");
      if (conn.#pending || conn.#queue.length || conn.sentBytes !== conn.receivedBytes) {
        throw new TypeError("Cannot take over the wire of a connection already in use");
      }
      return conn.#transport;
    };
  }

  private constructor(
    key: typeof token,
    mode: "session" | "shared",
    framing: Framing,
    transport: Transport,
    options: { maxMessage: number; timeout: number; early?: Uint8Array },
  ) {
    if (key !== token) throw new TypeError("Illegal constructor: use connect()");
    if (transport.records) this.#replies = new ReplyDecoder();
    this.mode = mode;
    this.framing = framing;
    this.#transport = transport;
    this.#decoder = new FrameDecoder(framing, { maxMessage: options.maxMessage });
    // In raw framing a read is a message: never read more than one may hold.
    this.#buffer = new Uint8Array(framing === "raw" ? Math.min(65536, options.maxMessage) : 65536);
    this.#timeout = options.timeout;
    if (options.early?.length) this.#received(options.early);
  }

  /** Why the server ended the session, when it said so (sessions only). */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /**
   * The replies as a stream of messages, read without a timeout; cancelling it closes
   * the connection. See the {@linkcode FifoConn} example.
   */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= messageReadable(
      () => this.receive({ timeout: Infinity }),
      () => this.close(),
    );
  }

  /**
   * A stream of messages to send, each as {@linkcode FifoConn.send} would. Closing it
   * does not close the connection (replies may still come): call
   * {@linkcode FifoConn.close}. See the {@linkcode FifoConn} example.
   */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= messageWritable((message) => this.send(message));
  }

  /** Messages received and waiting for {@linkcode FifoConn.receive}. */
  get buffered(): number {
    return this.#queue.length;
  }

  /**
   * Sends one message, framed.
   *
   * @param message The payload; text is UTF-8 encoded.
   */
  send(message: Uint8Array | string): Promise<void> {
    const bytes = typeof message === "string" ? new TextEncoder().encode(message) : message;
    return this.sendFramed(encodeFrame(this.framing, bytes));
  }

  /**
   * Sends bytes that are already framed: many messages in one write, say.
   *
   * Waits while more than the session's window of bytes is unanswered, reading (and
   * queueing for {@linkcode FifoConn.receive}) the replies meanwhile, so a client that
   * sends everything before receiving anything never deadlocks.
   *
   * @param wire Framed messages.
   */
  async sendFramed(wire: Uint8Array): Promise<void> {
    if (this.#closed) throw new Deno.errors.BadResource("Cannot send: the connection is closed");
    // An echo's replies are its credit; a listen() server acknowledges what it read.
    const credit = () => this.#transport.records?.ack ? this.#acked : this.receivedBytes;
    while (
      !this.#ended && this.sentBytes > credit() &&
      this.sentBytes - credit() + wire.length > this.#transport.window
    ) {
      await this.#pump();
    }
    this.sentBytes += wire.length;
    await this.#transport.write(wire);
    this.#transport.replies.expectReply();
  }

  /**
   * Receives the next message.
   *
   * @param options How long to wait.
   * @returns The payload, or `null` once the server has ended the stream.
   */
  async receive(options: ReceiveOptions = {}): Promise<Uint8Array | null> {
    const timeout = options.timeout ?? this.#timeout;
    while (!this.#queue.length && !this.#ended) {
      const what = () => `waiting for a reply on "${this.#transport.replies.file.path}"`;
      if (options.signal) {
        const signals = [options.signal];
        if (timeout !== Infinity) signals.push(AbortSignal.timeout(timeout));
        await abortable(this.#pump(), AbortSignal.any(signals)).catch((error) => {
          throw explainTimeout(error, timeout, what());
        });
        continue;
      }
      if (timeout === Infinity) {
        await this.#pump();
        continue;
      }
      // One plain timer per wait: AbortSignal.timeout and AbortSignal.any cost more than a
      // ping-pong round trip's whole budget.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Deno.errors.TimedOut(`Timed out after ${timeout} ms ${what()}`)),
          timeout,
        );
      });
      try {
        await Promise.race([this.#pump(), expired]);
      } finally {
        clearTimeout(timer);
      }
    }
    const message = this.#queue.shift();
    if (message) return message;
    if (this.#error) throw this.#error;
    return null;
  }

  /**
   * Reads once from the reply FIFO, sharing a read already under way. Never rejects: a
   * read that fails after its caller timed out must not become an unhandled rejection,
   * so the error is kept and thrown to whoever receives next.
   */
  #pump(): Promise<void> {
    this.#pending ??= (async () => {
      try {
        const n = await this.#transport.replies.read(this.#buffer);
        if (n === null) {
          const rest = this.#decoder.takeRest();
          if (rest.length) this.#queue.push(rest);
          this.#ended = true;
        } else {
          this.#received(this.#buffer.subarray(0, n));
        }
      } catch (error) {
        this.#ended = true;
        if (!this.#closed) this.#error = error;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }

  #received(bytes: Uint8Array): void {
    if (!this.#replies) {
      this.receivedBytes += bytes.length;
      this.#decode(bytes);
      return;
    }
    this.#replies.push(bytes, {
      data: (data) => {
        this.receivedBytes += data.length;
        this.#decode(data);
      },
      ack: (consumed) => this.#acked += consumed,
      reason: (text) => this.#closeReason = text,
    });
  }

  #decode(bytes: Uint8Array): void {
    this.#decoder.push(bytes, (_, payload) => this.#queue.push(payload.slice()));
  }

  /** Receives messages until the server ends the stream. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }

  /**
   * Closes the connection: the server sees the client leave; a session's FIFOs and
   * directory are removed.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#transport.close(this.#pending !== undefined);
    }
    return Promise.resolve();
  }

  /** Closes the connection (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The raw wire of a fresh connection (internal, for `filter.ts`): framed bytes go out and
 * the echo comes back unframed, with no window and no decoding. The caller keeps
 * `sentBytes`/`receivedBytes` up to date and never has more than `window` bytes unanswered.
 *
 * @param conn A connection nothing was sent on yet.
 * @returns Its transport.
 */
export function wireOf(conn: FifoConn): Transport {
  return wireAccess(conn);
}

function combinedSignal(options: ConnectOptions, timeout: number): AbortSignal {
  return AbortSignal.any(
    [options.signal, timeout === Infinity ? undefined : AbortSignal.timeout(timeout)]
      .filter((s) => s !== undefined),
  );
}

/** Names who besides the owner may read FIFOs of these modes, or `""` when nobody. */
function otherReaders(modes: number[]): string {
  const group = modes.some((mode) => mode & 0o040);
  const others = modes.some((mode) => mode & 0o004);
  return group && others
    ? "its group and all other users"
    : group
    ? "its group"
    : others
    ? "all other users"
    : "";
}

/** Opens the plain pair in the seed's order: the server's input, then its output. */
async function connectShared(
  dir: string,
  name: string,
  uid: number,
  timeout: number,
  options: ConnectOptions,
) {
  const { signal } = options;
  const allowReadable = !options.strict;
  const input = await FifoFile.open(`${dir}/${name}.in`, {
    access: "write",
    timeout,
    signal,
    uid,
    allowReadable,
  });
  let output: FifoFile;
  try {
    output = await FifoFile.open(`${dir}/${name}.out`, {
      access: "read",
      timeout,
      signal,
      uid,
      allowReadable,
    });
  } catch (error) {
    input.close();
    throw error;
  }
  const modes = [input.info.mode ?? 0, output.info.mode ?? 0].map((mode) => mode & 0o777);
  const readers = otherReaders(modes);
  if (readers) {
    const warn = options.onWarning ?? ((message: string) => console.warn(message));
    const octal = (mode: number) => mode.toString(8).padStart(4, "0");
    warn(
      `FIFOs "${input.path}" (${octal(modes[0])}) and "${output.path}" (${octal(modes[1])}) ` +
        `can be read by ${readers}`,
    );
  }
  const fast = nonblockingTwin(input, uid, allowReadable);
  const transport: Transport = {
    window: Infinity,
    write: async (wire) => {
      // What the pipe takes now goes in without a thread hop; the rest, in order, waits
      // for room on a runtime thread.
      const taken = fast ? fast.tryWrite(wire) : 0;
      if (taken < wire.length) await input.writeAll(wire.subarray(taken));
    },
    replies: new ReplyReader(output),
    close() {
      // Our writer leaving is the end of our stream: the server then closes the output,
      // which also ends a read of ours still pending. (Nothing may be written into the
      // shared output to release it sooner: the next client would read it.)
      fast?.close();
      input.close();
      output.close();
    },
  };
  return transport;
}

/**
 * A non-blocking write end of the FIFO `file` has open, or `undefined` when that is not
 * to be had now (its reader left, or the name no longer leads to that very FIFO).
 */
function nonblockingTwin(file: FifoFile, uid: number, allowReadable: boolean) {
  let twin: FifoFile;
  try {
    twin = FifoFile.openSync(file.path, { access: "write", nonblocking: true, uid, allowReadable });
  } catch {
    return undefined;
  }
  if (sameFile(twin.info, file.info)) return twin;
  twin.close();
  return undefined;
}

/** Writes `records` in atomic pieces of at most PIPE_BUF that end on record boundaries. */
async function writeRecords(
  fast: FifoFile,
  slow: () => Promise<FifoFile>,
  records: Uint8Array,
  ends: number[],
): Promise<void> {
  let start = 0;
  for (let i = 0; i < ends.length;) {
    let end = ends[i++];
    while (i < ends.length && ends[i] - start <= PIPE_BUF) end = ends[i++];
    const piece = records.subarray(start, end);
    // Non-blocking first: no thread hop. A full pipe takes nothing (pieces are atomic),
    // and the blocking end then waits on a runtime thread, not the event loop.
    if (fast.tryWrite(piece) === 0) await (await slow()).writeAll(piece);
    start = end;
  }
}

async function readHandshake(reply: FifoFile, signal: AbortSignal, path: string) {
  let bytes = new Uint8Array(0);
  const buffer = new Uint8Array(PIPE_BUF);
  for (;;) {
    const nl = bytes.indexOf(0x0a);
    if (nl >= 0) {
      return {
        handshake: JSON.parse(new TextDecoder().decode(bytes.subarray(0, nl))) as Handshake,
        early: bytes.slice(nl + 1),
      };
    }
    if (bytes.length > PIPE_BUF) throw new Error(`Malformed handshake on "${path}"`);
    // After an abort nobody awaits the read: the session is torn down, its FIFO removed.
    const n = await abortable(reply.read(buffer), signal);
    if (n === null) throw new Error(`The server closed the session on "${path}" before answering`);
    const grown = new Uint8Array(bytes.length + n);
    grown.set(bytes);
    grown.set(buffer.subarray(0, n), bytes.length);
    bytes = grown;
  }
}

/**
 * Throws unless `info` (what `lstat` saw) is a real directory of ours that only we may
 * enter: the FIFOs we are about to make in it by path must land nowhere else.
 */
function assertPrivateDir(path: string, info: Deno.FileInfo, uid: number): void {
  const mode = (info.mode ?? 0) & 0o7777;
  const reason = info.isSymlink
    ? "it is a symlink"
    : !info.isDirectory
    ? "it is not a directory"
    : info.uid !== uid
    ? `it is owned by uid ${info.uid}, not ${uid}`
    : mode !== 0o700
    ? `its mode ${mode.toString(8).padStart(4, "0")} is not 0700`
    : undefined;
  if (reason) throw new Error(`Cannot use session directory "${path}": ${reason}`);
}

/** Removes the directory we made, if `path` still names it; anything else is left alone. */
function removeOwnDir(path: string, info: Deno.FileInfo): void {
  if (!info.isDirectory) return;
  try {
    const now = Deno.lstatSync(path);
    if (sameFile(now, info)) Deno.removeSync(path);
  } catch { /* not empty or gone: leave it */ }
}

/** Opens a private session: see README "Sessions". */
async function connectSession(
  dir: string,
  name: string,
  framing: Framing,
  uid: number,
  timeout: number,
  options: ConnectOptions,
) {
  const controlPath = `${dir}/${name}.ctl`;
  // Mode 0700 from the start (makeTempDir's own), never set afterwards by path: a chmod by
  // path follows whatever symlink a racer puts in the directory's place.
  const sessionDir = await Deno.makeTempDir({ dir, prefix: sessionPrefix(name) });
  const dirInfo = Deno.lstatSync(sessionDir);
  const made: [string, Deno.FileInfo][] = [];
  const opened: FifoFile[] = [];
  let slow: FifoFile | undefined;
  const cleanup = () => {
    for (const file of opened) file.close();
    slow?.close();
    for (const [path, info] of made) removeFifo(path, info);
    removeOwnDir(sessionDir, dirInfo);
    globalThis.removeEventListener("unload", cleanup);
  };
  // A client that exits without closing still leaves nothing behind.
  globalThis.addEventListener("unload", cleanup);
  try {
    assertPrivateDir(sessionDir, dirInfo, uid);
    const replyPath = `${sessionDir}/reply`;
    const alivePath = `${sessionDir}/alive`;
    made.push([replyPath, await makeFifo(replyPath, { uid })]);
    made.push([alivePath, await makeFifo(alivePath, { uid })]);
    // Held read-write for our whole life: the server polls its read end, and sees end of
    // file only when we are gone, however we die.
    opened.push(FifoFile.openSync(alivePath, { access: "readwrite", uid }));
    // A reader must exist before the server opens the reply end without blocking; kept
    // for reads that must not park a thread (see reply_reads.ts).
    const placeholder = FifoFile.openSync(replyPath, { access: "read", nonblocking: true, uid });
    opened.push(placeholder);
    const fast = FifoFile.openSync(controlPath, { access: "write", nonblocking: true, uid });
    opened.push(fast);
    const signal = combinedSignal(options, timeout);
    // Used for the whole session, so bound by the timeout alone, not the connect signal.
    const blockingControl = async () =>
      slow ??= await FifoFile.open(controlPath, { access: "write", timeout, uid });
    const hello: Hello = { v: 1, dir: sessionDir, framing, replies: "records" };
    const request = encodeRecord(
      RecordType.HELLO,
      0,
      new TextEncoder().encode(JSON.stringify(hello)),
    );
    // Other clients' requests may fill the request FIFO for a moment: wait (within the
    // timeout) for room rather than fail.
    await abortable(writeRecords(fast, blockingControl, request, [request.length]), signal)
      .catch((error) => {
        throw explainTimeout(error, timeout, `waiting for room in "${controlPath}"`);
      });
    const answered = `waiting for the server to answer on "${controlPath}"`;
    const reply = await FifoFile.open(replyPath, { access: "read", signal, uid }).catch((error) => {
      throw explainTimeout(error, timeout, answered);
    });
    opened.push(reply);
    const { handshake, early } = await readHandshake(reply, signal, replyPath).catch((error) => {
      throw explainTimeout(error, timeout, answered);
    });
    if ("error" in handshake) {
      throw new Deno.errors.ConnectionRefused(`The server refused the session: ${handshake.error}`);
    }
    const id = handshake.id;
    const transport: Transport = {
      window: handshake.window,
      records: handshake.records ? { ack: handshake.ack === true } : undefined,
      write: (wire) => {
        const { records, ends } = encodeData(id, wire);
        return writeRecords(fast, blockingControl, records, ends);
      },
      replies: new ReplyReader(reply, placeholder),
      close(readerParked) {
        try {
          fast.tryWrite(encodeRecord(RecordType.BYE, id, new Uint8Array(0)));
        } catch { /* the server is gone */ }
        if (readerParked) {
          // A parked read would keep the process alive if the server never answers: one
          // byte into our own private reply FIFO releases it (and is never looked at).
          try {
            using waker = FifoFile.openSync(replyPath, { access: "write", nonblocking: true, uid });
            waker.tryWrite(new Uint8Array(1));
          } catch { /* no reader left: nothing is parked */ }
        }
        cleanup();
      },
    };
    return { transport, early };
  } catch (error) {
    cleanup();
    throw error;
  }
}

/**
 * Connects to an echo server: a private session where the server offers one, else the
 * plain `NAME.in`/`NAME.out` pair (the seed's Python server, an older server).
 *
 * Never creates anything at the server's paths, never waits longer than `timeout` for
 * the server, and verifies every FIFO it opens (ours, mode `0600`, not a symlink).
 *
 * Permissions: `--allow-read` and `--allow-write` for `dir`; `--allow-run=mkfifo` for a
 * session (without it, only the plain pair).
 *
 * @example Talk to an echo server
 * ```ts
 * import { connect, serveEcho } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir(); // a private place: /tmp is shared
 * try {
 *   await using server = await serveEcho({ dir, name: "echo" });
 *   await using conn = await connect({ dir, name: "echo" });
 *   assert.equal(conn.mode, "session");
 *   await conn.send("hello");
 *   assert.equal(new TextDecoder().decode((await conn.receive())!), "hello");
 *   await conn.send("exit"); // the exit word stops the server (it is not echoed)
 *   assert.equal((await server.finished).sessions, 1);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @param options Where the server is and how to talk to it.
 * @returns The open connection.
 */
export async function connect(options: ConnectOptions = {}): Promise<FifoConn> {
  const { dir, name } = serverPlace(options);
  const framing = options.framing ?? "lines";
  const maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
  const timeout = options.timeout ?? 5000;
  const mode = options.mode ?? "auto";
  if (!Number.isFinite(timeout) && timeout !== Infinity || timeout < 0) {
    throw new TypeError(`Invalid timeout "${timeout}": expected milliseconds`);
  }
  new FrameDecoder(framing, { maxMessage }); // validates both
  checkServerDir(dir);
  const uid = currentUid(dir);
  const controlPath = `${dir}/${name}.ctl`;
  const canMakeFifos =
    Deno.permissions.querySync({ name: "run", command: "mkfifo" }).state === "granted";
  const useSession = mode === "session" ||
    (mode === "auto" && canMakeFifos && isServed(controlPath, uid));
  if (useSession) {
    if (mode === "session") assertMkfifoAllowed(`Cannot open a session on "${controlPath}"`);
    if (mode === "session" && !isServed(controlPath, uid)) {
      throw new Deno.errors.NotFound(`No session server is listening on "${controlPath}"`);
    }
    const { transport, early } = await connectSession(dir, name, framing, uid, timeout, options);
    return createConn("session", framing, transport, { maxMessage, timeout, early });
  }
  const transport = await connectShared(dir, name, uid, timeout, options);
  return createConn("shared", framing, transport, { maxMessage, timeout });
}
