/**
 * The plain pair's output side, on the event loop: it waits for readers, holds the
 * replies that have none yet, writes what the input loop could not, and decides when a
 * reader sees end of file. Internal; see `plain_engine.ts` for the whole picture.
 *
 * ```text
 *  idle: no open of NAME.out (a reader that comes early waits in its own open())
 *     │ client N begins, or replies wait for a reader
 *     ▼
 *  open(NAME.out) for writing, parked on a pool thread until a reader is there
 *     │ it returns: a reader arrived (before its client, with it, or later)
 *     ▼
 *  holding a reader for N ── READER = N: the input loop writes directly when it can
 *     │ replies from the ring are written in order, blocking, off the event loop,
 *     │   many of one client in one write
 *     │ EPIPE before any reply reached it: not N's reader; park again, keep them
 *     │ EPIPE after: N's reader left; N's later replies go only to a reader that
 *     │   is there now, the others are dropped (one log line when N ends)
 *     ▼
 *  N ended and its replies are out: close, so the reader sees end of file; back to
 *  idle (re-opening at once could catch that reader before it reads its end of file)
 *  N ended with no reader: its held replies go with it (one log line), and the parked
 *  open is withdrawn, so a reader that comes later waits for the next client.
 * ```
 *
 * @module
 */
import { FifoFile, releasePendingOpen } from "../fifo/fifo_file.ts";
import { type InputEvent, type PlainConfig, Slot } from "./plain_protocol.ts";
import { ReplyRing, type RingReply } from "./reply_ring.ts";

/** Where the output's events go. */
export interface PlainOutputHandlers {
  /** One log line about a client. */
  onClientError(message: string): void;
  /** An error that ends the server. */
  onFatal(error: Error): void;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the output side (see the module doc). */
export class PlainOutput {
  #config: PlainConfig;
  #slots: Int32Array;
  #handlers: PlainOutputHandlers;
  #ring: ReplyRing;
  /** The blocking write end, held while a reader is there. */
  #file: FifoFile | null = null;
  /** The client {@linkcode PlainOutput.#file} serves. */
  #fileFor = 0;
  #parking: Promise<void> | null = null;
  /** Replies to write, in order; those from the ring lie there until marked done. */
  #queue: RingReply[] = [];
  /** The latest client begun, and the latest ended. */
  #current = 0;
  #ended = 0;
  #readerLeft = new Set<number>();
  /** Clients refused before their end: their reader gets end of file once echoes are out. */
  #refused = new Set<number>();
  #dropped = new Map<number, number>();
  /** The last client whose end {@linkcode Slot.ENDED} says was taken. */
  #endedSaid = 0;
  #pumping: Promise<void> | null = null;
  #again = false;
  #writing = false;
  #stopping = false;

  /**
   * Starts waiting for a reader.
   *
   * @param config What the server serves.
   * @param handlers Where log lines and fatal errors go.
   */
  constructor(config: PlainConfig, handlers: PlainOutputHandlers) {
    this.#config = config;
    this.#slots = new Int32Array(config.shared);
    this.#handlers = handlers;
    this.#ring = new ReplyRing(config.ring, config.shared);
    this.#ring.sleep(); // nothing to do yet: the worker's first reply wakes us
  }

  /** Takes the replies waiting in the ring, in order, before any later event. */
  takeRing(): void {
    for (const reply of this.#ring.take()) this.#accept(reply);
  }

  #accept(reply: RingReply): void {
    if (this.#readerLeft.has(reply.client) && !this.#file) this.#settle(reply, true);
    else this.#queue.push(reply);
  }

  /** One reply written (or, `dropped`, never to be): no longer held, its room freed. */
  #settle(reply: RingReply, dropped: boolean): void {
    if (dropped) this.#drop(reply.client, reply.bytes.length, true);
    else this.#release(reply.bytes.length);
    this.#done([reply]);
  }

  /** Replies written or dropped: their room in the ring is free once older ones are. */
  #done(replies: RingReply[]): void {
    for (const reply of replies) reply.done = true;
    this.#ring.free();
  }

  /** Takes one event of the input loop. */
  handle(event: InputEvent): void {
    switch (event.type) {
      case "begin":
        this.#current = event.client;
        this.#dropOlderUnread(event.client);
        if (this.#file && !this.#queue.length) this.#serve(event.client);
        this.#park();
        break;
      case "ring":
        break;
      case "refused":
        this.#refused.add(event.client);
        if (event.dropHeld) this.#discard(event.client, false);
        break;
      case "end":
        this.#ended = event.client;
        this.#refused.delete(event.client);
        if (!(this.#file && this.#fileFor === event.client) && !event.readerThere) {
          // It leaves without a reader: its replies go with it, and a reader that comes
          // now is the next client's.
          this.#discard(event.client, true);
          this.#report(event.client);
        }
        break;
      default:
        return;
    }
    this.#pump();
    this.#sayEnded();
  }

  /**
   * Tells the input loop, once no end of `NAME.out` a reader of an ended client may hold
   * is open any more, that it may let the next writer in (see {@linkcode Slot.ENDED}).
   */
  #sayEnded(): void {
    if (this.#ended <= this.#endedSaid) return;
    if (this.#file && this.#fileFor <= this.#ended) return;
    this.#endedSaid = this.#ended;
    Atomics.store(this.#slots, Slot.ENDED, this.#ended);
    Atomics.notify(this.#slots, Slot.ENDED);
  }

  /**
   * Waits until every held reply is written or `ms` have passed (the exit word: a client
   * may read its last replies after sending it).
   */
  async flush(ms: number): Promise<void> {
    for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(10)) {
      this.takeRing();
      if (!this.#queue.length) return;
    }
  }

  /** Stops: releases a parked open or a blocked write, and closes the output. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const { output } = this.#config;
    while (this.#parking || this.#writing) {
      if (this.#parking) releasePendingOpen(output, "write", { uid: this.#config.uid });
      // A reader that stopped reading: its replies are lost anyway, the server is stopping.
      if (this.#writing) drain(output, this.#config.uid);
      await Promise.race([this.#parking ?? this.#pumping, sleep(20)]);
    }
    for (const client of this.#dropped.keys()) this.#report(client);
    this.#file?.close();
    this.#file = null;
  }

  /** Whether no more replies can come for `client`. */
  #over(client: number): boolean {
    return client <= this.#ended || this.#refused.has(client);
  }

  #serve(client: number): void {
    this.#fileFor = client;
    Atomics.store(this.#slots, Slot.SERVED, client);
    Atomics.notify(this.#slots, Slot.SERVED);
    if (client === this.#current && this.#current > this.#ended) {
      Atomics.store(this.#slots, Slot.READER, client);
    }
    this.#sayEnded();
  }

  /** A new client begins with no reader for older replies: they are dropped. */
  #dropOlderUnread(client: number): void {
    if (this.#file) return; // a reader is there: they are on their way to it
    const older = new Set(this.#queue.map((e) => e.client).filter((c) => c < client));
    for (const gone of older) this.#discard(gone, true);
  }

  #discard(client: number, count: boolean): void {
    let bytes = 0;
    const gone: RingReply[] = [];
    this.#queue = this.#queue.filter((entry) => {
      if (entry.client !== client) return true;
      bytes += entry.bytes.length;
      gone.push(entry);
      return false;
    });
    this.#done(gone);
    this.#release(bytes);
    if (count && bytes) this.#drop(client, bytes, false);
    if (count && client <= this.#ended) this.#report(client);
  }

  #drop(client: number, bytes: number, held = false): void {
    if (held) this.#release(bytes);
    this.#dropped.set(client, (this.#dropped.get(client) ?? 0) + bytes);
  }

  /** No longer holds `bytes`: the input loop may be waiting for room. */
  #release(bytes: number): void {
    if (!bytes) return;
    Atomics.sub(this.#slots, Slot.HELD, bytes);
    Atomics.notify(this.#slots, Slot.HELD);
  }

  #report(client: number): void {
    const bytes = this.#dropped.get(client);
    this.#dropped.delete(client);
    this.#readerLeft.delete(client);
    if (!bytes) return;
    this.#handlers.onClientError(
      `No reader on "${this.#config.outputName}": dropped ${bytes} bytes of replies`,
    );
  }

  /**
   * Runs {@linkcode PlainOutput.#run} until nothing new came in while it ran. Deno may
   * hand over a finished write and a worker's message in one turn, before the promise
   * callbacks in between: a call that lands while a run is finishing is never lost.
   */
  #pump(): void {
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = this.#runAgain();
  }

  async #runAgain(): Promise<void> {
    try {
      do {
        this.#again = false;
        await this.#run();
      } while (this.#again && !this.#stopping);
    } catch (error) {
      if (!this.#stopping) this.#handlers.onFatal(error as Error);
    } finally {
      this.#pumping = null;
      // Asleep: the worker wakes us for its next reply. Unless one came meanwhile.
      if (!this.#stopping && !this.#ring.sleep()) {
        this.takeRing();
        this.#pump();
      }
    }
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      this.takeRing();
      const file = this.#file;
      const client = this.#fileFor;
      if (file && this.#over(client) && !this.#queue.some((e) => e.client === client)) {
        // Its client has gone and has all its replies: the reader sees end of file.
        this.#close();
        this.#report(client);
        // A client that began after it ended (the input loop waits for this close, but not
        // for ever) needs an open too: without one, its reader would wait in open() for good.
        if (this.#current > client && client <= this.#ended) this.#park();
        continue;
      }
      const head = this.#queue[0];
      if (!head) return;
      if (!file) {
        if (this.#readerLeft.has(head.client)) {
          this.#settle(this.#queue.shift()!, true);
          continue;
        }
        this.#park();
        return; // the parked open pumps again
      }
      const group = this.#following(head);
      this.#writing = true;
      // Bytes in the pipe are replies its reader may have read: a reader that leaves
      // after that was this client's, even when a long write ends in EPIPE.
      const delivered = () => Atomics.store(this.#slots, Slot.DELIVERED, head.client);
      try {
        await file.writeAll(group.length === 1 ? head.bytes : joined(group), delivered);
      } catch (error) {
        if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
        this.#close();
        const left = Atomics.load(this.#slots, Slot.DELIVERED) === head.client;
        // What its reader left unread is nobody's. The open parked next holds the pipe,
        // so its buffer would outlive it and go to whichever reader comes next.
        drain(this.#config.output, this.#config.uid);
        this.#park();
        // It left before any reply reached it: it was not this client's reader. Hold on.
        if (!left) continue;
        // Its reader had replies and left: later ones go only to a reader there now.
        this.#readerLeft.add(head.client);
      } finally {
        this.#writing = false;
      }
      for (const entry of group) {
        if (this.#queue[0] !== entry) break;
        this.#settle(this.#queue.shift()!, this.#readerLeft.has(entry.client) && !this.#file);
      }
      if (!this.#queue.some((e) => e.client === this.#current)) {
        if (this.#file && this.#fileFor === this.#current) this.#serve(this.#current);
      }
    }
  }

  /**
   * `head` and the replies after it of the same client whose bytes follow on in the ring:
   * one write, which the blocking end streams into the pipe as its reader reads.
   */
  #following(head: RingReply): RingReply[] {
    const group = [head];
    let end = head.bytes.byteOffset + head.bytes.length;
    for (let i = 1; i < this.#queue.length; i++) {
      const next = this.#queue[i];
      if (next.client !== head.client || next.bytes.buffer !== head.bytes.buffer) break;
      if (next.bytes.byteOffset !== end) break;
      group.push(next);
      end += next.bytes.length;
    }
    return group;
  }

  #close(): void {
    Atomics.store(this.#slots, Slot.READER, 0);
    this.#file?.close();
    this.#file = null;
    this.#fileFor = 0;
    this.#sayEnded();
  }

  /**
   * Parks an open of the output for writing until a reader arrives. Only when a client
   * has begun or replies wait: a writer opened while the last client's reader has yet to
   * read its end of file would turn that end of file into a wait, and nothing short of
   * that open can tell whether a reader is still there.
   */
  #park(): void {
    if (this.#parking || this.#file || this.#stopping) return;
    const { output, uid } = this.#config;
    this.#parking = (async () => {
      const file = await FifoFile.open(output, { access: "write", uid });
      if (this.#stopping) {
        file.close();
        return;
      }
      this.#file = file;
      // Replies held for a client that ended with no reader, or for one older than the
      // newest writer, are not this reader's. Read from shared memory, which the input
      // loop writes before the next writer can come: its messages may reach us later.
      const alone = Atomics.load(this.#slots, Slot.LEFT_ALONE);
      const newest = Math.max(this.#current, Atomics.load(this.#slots, Slot.CLIENT));
      const stale = new Set(
        this.#queue.map((e) => e.client).filter((c) => c <= alone || c < newest),
      );
      for (const gone of stale) this.#discard(gone, true);
      // Else it is the reader of the newest client; if that one left with no reader, of
      // the next; if it left with its reader there, it is that reader (end of file at once).
      this.#serve(this.#queue[0]?.client ?? (newest === alone ? newest + 1 : newest));
    })().catch((error) => {
      if (!this.#stopping) this.#handlers.onFatal(error);
    }).finally(() => {
      this.#parking = null;
      this.#pump();
    });
  }
}

/** The bytes of `group`, which lie one after another in one buffer, as one view. */
function joined(group: RingReply[]): Uint8Array {
  const first = group[0].bytes;
  const last = group.at(-1)!.bytes;
  return new Uint8Array(
    first.buffer,
    first.byteOffset,
    last.byteOffset + last.length - first.byteOffset,
  );
}

/** Reads and discards what is in the output, so that a write parked on it completes. */
function drain(path: string, uid: number): void {
  try {
    using output = FifoFile.openSync(path, { access: "read", nonblocking: true, uid });
    const sink = new Uint8Array(65536);
    while (output.readSync(sink)) { /* drain */ }
  } catch { /* the reader left meanwhile: the write has failed with EPIPE */ }
}
