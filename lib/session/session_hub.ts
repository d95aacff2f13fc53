/**
 * The server side of sessions (internal): one reader on the shared request FIFO for every
 * client, a reply FIFO per client written without blocking the event loop, liveness by
 * polling that backs off while nothing changes and stops when no session is left.
 *
 * Only the request FIFO has a pending read, so the runtime's bounded blocking pool (a
 * process stalls at about 32 parked FIFO reads) never limits how many clients connect.
 * Replies a full pipe does not take wait in a queue. A few sessions at a time
 * ({@linkcode BLOCKING_WRITERS}) drain theirs with a blocking write on a runtime thread, which
 * returns the moment the client reads; the others are retried on a timer, whose nested
 * delays are about 2 ms, the cost of a pipe-full.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { FifoFile } from "../fifo/fifo_file.ts";
import { concatBytes } from "../framing/concat_bytes.ts";
import type { Framing } from "../framing/framing.ts";
import { removeFifo } from "../fifo/make_fifo.ts";
import { sameFile } from "../fifo/same_file.ts";
import { printable } from "../framing/printable.ts";
import {
  encodeAck,
  encodeReply,
  type Handshake,
  type Hello,
  parseRecords,
  RecordType,
  ReplyType,
  sessionPrefix,
} from "./session_protocol.ts";

const encoder = new TextEncoder();

/**
 * How many sessions may drain their queue with a blocking write at once. Each holds a
 * runtime thread until its client reads (or leaves): few, so that clients who stop reading
 * can at worst send the rest back to the timer, never stall the pool.
 */
export const BLOCKING_WRITERS = 4;

/** At most about this many queued bytes are joined into one blocking write. */
const DRAIN_AT_ONCE = 1 << 18;

/** One client's session, as the server sees it. */
export class HubSession {
  /** The id its records carry. */
  readonly id: number;
  /** Its private directory. */
  readonly dir: string;
  /** Free for the handler's per-session state. */
  state: unknown;
  #hub: SessionHub;
  #reply: FifoFile;
  #alive: FifoFile;
  #dirInfo: Deno.FileInfo;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #closed = false;
  #records: boolean;
  #drainWaiters: { limit: number; resolve: () => void }[] = [];
  /** The blocking end of the reply FIFO, opened the first time the pipe was full. */
  #blocking: FifoFile | undefined;
  #draining = false;

  /** @internal */
  constructor(
    hub: SessionHub,
    id: number,
    dir: string,
    dirInfo: Deno.FileInfo,
    reply: FifoFile,
    alive: FifoFile,
    records = false,
  ) {
    this.#records = records;
    this.#hub = hub;
    this.id = id;
    this.dir = dir;
    this.#dirInfo = dirInfo;
    this.#reply = reply;
    this.#alive = alive;
  }

  /** Bytes accepted by {@linkcode HubSession.send} but not yet taken by the pipe. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * Sends bytes to the client without blocking: what the pipe does not take now is queued
   * and retried. A client that lets more than the hub's bound pile up is dropped.
   */
  send(bytes: Uint8Array): void {
    if (this.#closed || !bytes.length) return;
    this.#write(this.#records ? encodeReply(ReplyType.DATA, bytes) : bytes);
  }

  /** Whether the session has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Tells the client that `bytes` more of its request bytes were consumed (an ACK reply
   * record: its credit). Only for sessions that read reply records.
   */
  sendAck(bytes: number): void {
    if (this.#closed || !this.#records || bytes <= 0) return;
    this.#write(encodeAck(bytes));
  }

  /** Resolves once at most `limit` bytes are queued, or the session has ended. */
  whenDrained(limit: number): Promise<void> {
    if (this.#closed || this.#queued <= limit) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#drainWaiters.push({ limit, resolve });
    return promise;
  }

  #wakeDrained(): void {
    if (!this.#drainWaiters.length) return;
    const waiting = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiting) {
      if (this.#closed || this.#queued <= waiter.limit) waiter.resolve();
      else this.#drainWaiters.push(waiter);
    }
  }

  #write(bytes: Uint8Array): void {
    try {
      const taken = this.#queue.length ? 0 : this.#reply.tryWrite(bytes);
      if (taken === bytes.length) return;
      this.#queue.push(bytes.slice(taken));
      this.#queued += bytes.length - taken;
    } catch (error) {
      this.close(`Session ${this.id} ended: ${(error as Error).message}`);
      return;
    }
    if (this.#queued > this.#hub.maxQueued) {
      const draining = this.#draining;
      this.close(
        `Dropped session ${this.id}: ${this.#queued} reply bytes waiting, ` +
          `more than ${this.#hub.maxQueued} (the client is not reading)`,
      );
      if (draining) void this.#unblock();
      return;
    }
    this.#hub.wantFlush(this);
  }

  /** Whether {@linkcode HubSession.drainBlocking} has the queue. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * @internal Writes the queue through a blocking end of the reply FIFO, on a runtime
   * thread: each write returns as soon as the client has read enough, where the timer
   * would look again only about 2 ms later.
   */
  async drainBlocking(): Promise<void> {
    this.#draining = true;
    try {
      this.#blocking ??= await this.#openBlocking();
      while (!this.#closed && this.#queue.length) {
        // What is queued goes in one write (one runtime op), up to a bound on the copy.
        let count = 0;
        let length = 0;
        while (count < this.#queue.length && (!count || length < DRAIN_AT_ONCE)) {
          length += this.#queue[count++].length;
        }
        const pieces = this.#queue.slice(0, count);
        await this.#blocking.writeAll(concatBytes(pieces));
        if (this.#closed) return;
        this.#queue.splice(0, count);
        this.#queued -= length;
        this.#wakeDrained();
      }
    } catch (error) {
      this.close(`Session ${this.id} ended: ${(error as Error).message}`);
    } finally {
      this.#draining = false;
      if (this.#closed) this.#blocking?.close();
    }
  }

  /**
   * Lets the blocking write of a dropped client return: it would wait for as long as the
   * client keeps its reply FIFO open without reading, holding one of the hub's writers.
   * Reads and drops what is in the pipe (replies that client was never going to read)
   * until the write has returned, for at most a second.
   */
  async #unblock(): Promise<void> {
    let reader: FifoFile;
    try {
      reader = FifoFile.openSync(this.#reply.path, {
        access: "read",
        nonblocking: true,
        uid: this.#hub.uid,
      });
    } catch {
      return; // gone or replaced: then nobody is blocked on it either
    }
    try {
      if (!this.#isReplyFifo(reader)) return;
      const sink = new Uint8Array(65536);
      for (const deadline = Date.now() + 1000; this.#draining && Date.now() < deadline;) {
        while ((reader.readSync(sink) ?? 0) > 0) { /* dropped */ }
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    } catch {
      /* the client left: the write has failed with EPIPE */
    } finally {
      reader.close();
    }
  }

  /** Whether `file`, opened by path, is the very FIFO of the session's reply end. */
  #isReplyFifo(file: FifoFile): boolean {
    return sameFile(file.info, this.#reply.info);
  }

  /** The reply FIFO again, blocking: the very FIFO of the non-blocking end, or an error. */
  async #openBlocking(): Promise<FifoFile> {
    const path = this.#reply.path;
    // The client holds the read end: this open does not wait (unless it just left).
    const file = await FifoFile.open(path, { access: "write", uid: this.#hub.uid, timeout: 1000 });
    if (!this.#isReplyFifo(file)) {
      file.close();
      throw new Error(`Cannot use FIFO "${path}": it was replaced`);
    }
    return file;
  }

  /** @internal Retries queued bytes; returns whether some are still waiting for the timer. */
  flush(): boolean {
    if (this.#draining) return false; // drainBlocking() has the queue
    try {
      while (this.#queue.length) {
        const head = this.#queue[0];
        const taken = this.#reply.tryWrite(head);
        this.#queued -= taken;
        if (taken < head.length) {
          this.#queue[0] = head.subarray(taken);
          return true;
        }
        this.#queue.shift();
      }
    } catch (error) {
      this.close(`Session ${this.id} ended: ${(error as Error).message}`);
    } finally {
      this.#wakeDrained();
    }
    return false;
  }

  /** @internal Whether the client still holds its end of the liveness FIFO. */
  isAlive(): boolean {
    try {
      return this.#alive.readSync(new Uint8Array(1)) !== null;
    } catch {
      return false;
    }
  }

  /**
   * Ends the session: the client sees end of file on its reply FIFO. The hub keeps an eye
   * on the client until it is gone, then removes whatever it left behind.
   *
   * @param reason Logged through the hub's `onError` when given.
   */
  close(reason?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (reason && this.#records && !this.#queue.length) {
      // Best effort: the client learns why, unless its reply pipe is full.
      try {
        this.#reply.tryWrite(encodeReply(ReplyType.REASON, encoder.encode(reason)));
      } catch { /* the client is gone */ }
    }
    this.#reply.close();
    if (!this.#draining) this.#blocking?.close(); // else once its write returns
    this.#wakeDrained();
    this.#queue = [];
    this.#queued = 0;
    this.#hub.forget(this, reason);
  }

  /** @internal Answers a refused client, keeping the reply open until it has gone. */
  refuse(answer: Uint8Array): void {
    this.#closed = true;
    this.#reply.tryWrite(answer);
  }

  /** @internal The client is gone: remove its files (if still ours) and let go of them. */
  bury(): void {
    this.release();
    removeSessionDir(this.dir, this.#dirInfo, [this.#reply.info, this.#alive.info]);
  }

  /** @internal Let go of the client's FIFOs without removing them (the hub stops). */
  release(): void {
    this.#reply.close();
    if (!this.#draining) this.#blocking?.close();
    this.#alive.close();
  }
}

/** Removes a session's two FIFOs and its directory, if they are still what we checked. */
function removeSessionDir(dir: string, dirInfo: Deno.FileInfo, fifos?: Deno.FileInfo[]): void {
  try {
    const now = Deno.lstatSync(dir);
    if (now.ino !== dirInfo.ino || now.dev !== dirInfo.dev) return;
    for (const [i, name] of ["reply", "alive"].entries()) {
      const path = `${dir}/${name}`;
      const info = fifos?.[i] ?? Deno.lstatSync(path);
      if (info.isFifo) removeFifo(path, info);
    }
    Deno.removeSync(dir);
  } catch {
    // Already removed by its client, or holding something we did not create: left alone.
  }
}

/** What a {@linkcode SessionHub} tells its owner. */
export interface SessionHandler {
  /** A session was accepted. */
  onOpen(session: HubSession): void;
  /** Bytes of the session's stream arrived, in order (a view valid during the call). */
  onData(session: HubSession, bytes: Uint8Array): void;
  /** The session ended (client left, was dropped, or the hub stopped). */
  onClose(session: HubSession): void;
  /** A session was refused or dropped, or garbage arrived: one log line. */
  onError(message: string): void;
  /** Reading the request FIFO failed: the hub cannot go on. */
  onFatal(error: Error): void;
}

/** Options of a {@linkcode SessionHub}. */
export interface SessionHubOptions {
  dir: string;
  name: string;
  framing: Framing;
  maxMessage: number;
  uid: number;
  /**
   * The client's credit comes back in ACK records (a `listen()` server, whose replies are
   * not an echo); only clients that read reply records are then accepted.
   */
  ack?: boolean;
}

/**
 * Liveness sweeps: soon after a session opens or ends, then twice as far apart each time
 * nothing changed, up to the longest gap; none at all while no session exists. A client
 * that leaves properly says BYE and a reply to a dead one fails with EPIPE, so the sweep
 * only finds clients that died silently while idle: an idle server sleeps. One check
 * costs about 17 µs (a non-blocking read that fails with EAGAIN), so 1,000 idle sessions
 * cost about 0.2% of a core at the longest gap. (Deno.watchFs, which could replace the
 * sweep, reports nothing when a process holding a FIFO closes it or is killed.)
 */
const LIVENESS_FIRST_MS = 250;
const LIVENESS_LONGEST_MS = 8000;
const READ_SIZE = 1 << 20;

/** Serves sessions on a request FIFO (internal; see the module doc). */
export class SessionHub {
  /** How many unanswered bytes a client may have in flight (told in the handshake). */
  readonly window: number;
  /** Queued reply bytes past which a session is dropped. */
  readonly maxQueued: number;
  #options: SessionHubOptions;
  #handler: SessionHandler;
  #control: FifoFile | undefined;
  #waker: FifoFile | undefined;
  #sessions = new Map<number, HubSession>();
  /**
   * Ended sessions whose client has not gone yet, watched to clean up after it: one per
   * directory, so a client that opens session after session in one directory pins one.
   */
  #ended = new Map<string, HubSession>();
  #nextId = (crypto.getRandomValues(new Uint32Array(1))[0] & 0x7fffffff) + 1;
  #stopping = false;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #flushDelay = 1;
  #blockingWriters = 0;
  #livenessTimer: ReturnType<typeof setTimeout> | undefined;
  #livenessDelay = LIVENESS_FIRST_MS;
  #loop: Promise<void> | undefined;
  #opened = 0;

  /**
   * Makes a hub.
   *
   * @param options Where and what it serves.
   * @param handler Receives sessions and their data.
   */
  constructor(options: SessionHubOptions, handler: SessionHandler) {
    this.#options = options;
    this.#handler = handler;
    this.window = options.maxMessage + 65536;
    this.maxQueued = this.window + options.maxMessage + 4096;
  }

  /** Sessions opened so far. */
  get opened(): number {
    return this.#opened;
  }

  /**
   * Starts reading requests on `controlPath`, a FIFO the caller created.
   *
   * @param controlPath The shared request FIFO.
   */
  async start(controlPath: string): Promise<void> {
    // O_RDWR: we are a writer too, so the read never sees end of file between clients,
    // and a client's non-blocking open finds a reader for as long as we live.
    this.#control = await FifoFile.open(controlPath, {
      access: "readwrite",
      uid: this.#options.uid,
    });
    // Opened now, by the path the caller gave (it may be renamed): wakes our read on stop.
    this.#waker = FifoFile.openSync(controlPath, {
      access: "write",
      nonblocking: true,
      uid: this.#options.uid,
    });
    this.#loop = this.#readLoop(this.#control).catch((error) => {
      if (!this.#stopping) this.#handler.onFatal(error);
    });
  }

  async #readLoop(control: FifoFile): Promise<void> {
    const buffer = new Uint8Array(READ_SIZE);
    const onRecord = (type: number, id: number, payload: Uint8Array) => {
      try {
        this.#onRecord(type, id, payload);
      } catch (error) {
        // One client's bad request must not end the loop that serves every client.
        this.#handler.onError(`Ignored a request that failed: ${(error as Error).message}`);
      }
    };
    while (!this.#stopping) {
      const n = await control.read(buffer);
      if (n === null || this.#stopping) break;
      const dropped = parseRecords(buffer.subarray(0, n), onRecord);
      // A client that sends has likely read too: retry queued replies now, not on the
      // next timer tick (1 ms at best), so a streaming client is clocked by its own reads.
      if (this.#flushTimer !== undefined) this.#flushAll();
      if (dropped) {
        this.#handler.onError(`Dropped ${dropped} bytes on the request FIFO that are not records`);
      }
    }
  }

  #onRecord(type: number, id: number, payload: Uint8Array): void {
    if (type === RecordType.DATA) {
      const session = this.#sessions.get(id);
      if (session) this.#handler.onData(session, payload);
    } else if (type === RecordType.HELLO) {
      this.#accept(payload);
    } else if (type === RecordType.BYE) {
      this.#sessions.get(id)?.close();
    }
  }

  #accept(payload: Uint8Array): void {
    let hello: Partial<Hello>;
    try {
      hello = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      this.#handler.onError("Refused a session: its request is not JSON");
      return;
    }
    if (typeof hello !== "object" || hello === null || typeof hello.dir !== "string") {
      this.#handler.onError("Refused a session: its request names no directory");
      return;
    }
    const dir = hello.dir;
    const options = this.#options;
    // The client's strings go through printable(): a newline in them cannot forge a line.
    const refuse = (reason: string) =>
      this.#handler.onError(`Refused a session for "${printable(encoder.encode(dir))}": ${reason}`);
    if (hello.v !== 1) {
      return refuse(`unknown protocol version ${printable(encoder.encode(String(hello.v)))}`);
    }
    if (dirname(dir) !== options.dir || !basename(dir).startsWith(sessionPrefix(options.name))) {
      return refuse(`it is not a session directory of "${options.dir}/${options.name}"`);
    }
    let dirInfo: Deno.FileInfo;
    try {
      dirInfo = Deno.lstatSync(dir);
    } catch {
      return refuse("it does not exist");
    }
    if (dirInfo.isSymlink) return refuse("it is a symlink");
    if (!dirInfo.isDirectory) return refuse("it is not a directory");
    if (dirInfo.uid !== options.uid) return refuse(`it is owned by uid ${dirInfo.uid}`);
    if (((dirInfo.mode ?? 0) & 0o777) !== 0o700) {
      return refuse(`its mode ${((dirInfo.mode ?? 0) & 0o777).toString(8)} is not 0700`);
    }
    let reply: FifoFile | undefined;
    let alive: FifoFile | undefined;
    try {
      reply = FifoFile.openSync(`${dir}/reply`, {
        access: "write",
        nonblocking: true,
        uid: options.uid,
      });
      alive = FifoFile.openSync(`${dir}/alive`, {
        access: "read",
        nonblocking: true,
        uid: options.uid,
      });
    } catch (error) {
      reply?.close();
      return refuse((error as Error).message);
    }
    const encode = (answer: Handshake) => new TextEncoder().encode(JSON.stringify(answer) + "\n");
    const records = hello.replies === "records";
    if (hello.framing !== options.framing || this.#stopping || (options.ack && !records)) {
      const error = this.#stopping
        ? "the server is stopping"
        : hello.framing !== options.framing
        ? `framing mismatch: the server uses "${options.framing}", the client "${
          printable(encoder.encode(String(hello.framing)))
        }"`
        : "the client does not read reply records (it predates listen())";
      // The reply stays open until the client has gone: a client whose blocking open of
      // it comes after our answer still finds a writer, and reads why.
      const refused = new HubSession(this, 0, dir, dirInfo, reply, alive);
      refused.refuse(encode({ v: 1, error }));
      if (this.#stopping) refused.release();
      else this.#watchEnded(refused);
      return refuse(error);
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0x7fffffff ? 1 : this.#nextId + 1;
    this.#ended.get(dir)?.release();
    this.#ended.delete(dir);
    const session = new HubSession(this, id, dir, dirInfo, reply, alive, records);
    const handshake: Handshake = records
      ? { v: 1, id, window: this.window, records: true, ...(options.ack ? { ack: true } : {}) }
      : { v: 1, id, window: this.window };
    reply.tryWrite(encode(handshake));
    this.#sessions.set(id, session);
    this.#livenessSoon();
    this.#opened++;
    this.#handler.onOpen(session);
  }

  /** @internal */
  forget(session: HubSession, reason?: string): void {
    if (this.#sessions.get(session.id) !== session) return;
    this.#sessions.delete(session.id);
    if (this.#stopping) session.release();
    else this.#watchEnded(session);
    if (reason) this.#handler.onError(reason);
    this.#handler.onClose(session);
  }

  /** The uid that owns the hub's FIFOs. */
  get uid(): number {
    return this.#options.uid;
  }

  /**
   * @internal `session` has replies queued: a blocking drain if one of the
   * {@linkcode BLOCKING_WRITERS} is free, else the timer.
   */
  wantFlush(session: HubSession): void {
    if (session.draining) return;
    if (this.#blockingWriters >= BLOCKING_WRITERS || this.#stopping) return this.scheduleFlush();
    this.#blockingWriters++;
    session.drainBlocking().finally(() => {
      this.#blockingWriters--;
      // A free writer: give it to a session the timer is retrying.
      for (const waiting of this.#sessions.values()) {
        if (waiting.queued && !waiting.closed && !waiting.draining) return this.wantFlush(waiting);
      }
    });
  }

  /** @internal Retries queued replies soon, backing off while clients stay full. */
  scheduleFlush(): void {
    if (this.#flushTimer !== undefined || this.#stopping) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      const { waiting, progress } = this.#flushAll();
      // Back off only while no client reads; one that does gets its next pipe-full at once.
      this.#flushDelay = progress ? 1 : Math.min(this.#flushDelay * 2, 16);
      if (waiting) this.scheduleFlush();
    }, this.#flushDelay);
  }

  #flushAll(): { waiting: boolean; progress: boolean } {
    let waiting = false;
    let before = 0;
    let after = 0;
    for (const session of this.#sessions.values()) {
      if (!session.queued) continue;
      before += session.queued;
      if (session.flush()) waiting = true;
      after += session.queued;
    }
    return { waiting, progress: after < before };
  }

  /** Sweeps soon: something changed, so more may change. */
  #livenessSoon(): void {
    this.#livenessDelay = LIVENESS_FIRST_MS;
    clearTimeout(this.#livenessTimer);
    this.#livenessTimer = undefined;
    this.#scheduleLiveness();
  }

  #scheduleLiveness(): void {
    if (this.#livenessTimer !== undefined || this.#stopping) return;
    if (!this.#sessions.size && !this.#ended.size) return;
    this.#livenessTimer = setTimeout(() => {
      this.#livenessTimer = undefined;
      const delay = this.#livenessDelay;
      const changed = this.#checkLiveness();
      // #livenessSoon() (a session closed by the sweep) may have reset it meanwhile.
      if (!changed) this.#livenessDelay = Math.min(delay * 2, LIVENESS_LONGEST_MS);
      this.#scheduleLiveness();
    }, this.#livenessDelay);
  }

  /** @returns Whether some session ended or some directory was removed. */
  #checkLiveness(): boolean {
    let changed = false;
    for (const session of [...this.#sessions.values()]) {
      if (session.isAlive()) continue;
      session.close();
      changed = true;
    }
    for (const [dir, session] of this.#ended) {
      if (session.isAlive()) continue;
      this.#ended.delete(dir);
      session.bury();
      changed = true;
    }
    return changed;
  }

  #watchEnded(session: HubSession): void {
    this.#ended.get(session.dir)?.release();
    this.#ended.set(session.dir, session);
    this.#livenessSoon();
  }

  /**
   * Removes session directories a crashed server's clients left behind: those whose
   * liveness FIFO no process holds any more.
   *
   * @returns How many were removed.
   */
  sweepLeftovers(): number {
    const { dir, name, uid } = this.#options;
    let removed = 0;
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.isDirectory || !entry.name.startsWith(sessionPrefix(name))) continue;
      const path = `${dir}/${entry.name}`;
      try {
        const info = Deno.lstatSync(path);
        // Only a real directory of ours: never one we would reach through a symlink.
        if (info.isSymlink || !info.isDirectory || info.uid !== uid) continue;
        let abandoned = true;
        try {
          using alive = FifoFile.openSync(`${path}/alive`, {
            access: "read",
            nonblocking: true,
            uid,
          });
          abandoned = alive.readSync(new Uint8Array(1)) === null;
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) continue;
        }
        if (abandoned) {
          removeSessionDir(path, info);
          removed++;
        }
      } catch {
        // Vanished meanwhile.
      }
    }
    return removed;
  }

  /** Ends every session and stops reading requests. */
  async stop(): Promise<void> {
    if (this.#stopping) return this.#loop;
    this.#stopping = true;
    clearTimeout(this.#livenessTimer);
    clearTimeout(this.#flushTimer);
    for (const session of [...this.#sessions.values()]) session.close();
    for (const session of this.#ended.values()) session.release();
    this.#ended.clear();
    // One byte releases our own parked read. Written without blocking: when clients have
    // filled the request FIFO, the read returns by itself, and a blocking write from this
    // thread would wait for a read that only this thread can start.
    this.#waker?.tryWrite(new Uint8Array(1));
    await this.#loop;
    this.#control?.close();
    this.#waker?.close();
  }
}
