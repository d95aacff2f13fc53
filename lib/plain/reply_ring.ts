/**
 * Replies the input loop hands to the output through shared memory: their bytes in a
 * byte ring, and each reply's client and length in a ring of records. The worker puts,
 * the event loop takes and writes the bytes from where they lie. Internal.
 *
 * A `postMessage` per reply costs the worker a copy, a message and a wake-up of the event
 * loop; in bulk transfers that was most of the server's time. Through the rings the
 * worker copies once and wakes the event loop only when it sleeps, and the event loop
 * writes many replies of one client in one `write(2)`, which a blocking write end then
 * streams into the pipe as its reader reads, as C would.
 *
 * @module
 */
import { Slot } from "./plain_protocol.ts";

/** Replies the record ring holds at most. */
export const RING_RECORDS = 4096;

/** The ring memory {@linkcode ReplyRing} needs for replies of up to `maxMessage` bytes. */
export function ringMemory(
  maxMessage: number,
): { bytes: SharedArrayBuffer; records: SharedArrayBuffer } {
  // Room for the largest reply one read can make: a whole message and a read's worth.
  return {
    bytes: new SharedArrayBuffer(maxMessage + 2 * 65536),
    records: new SharedArrayBuffer(RING_RECORDS * 2 * 4),
  };
}

/** A reply taken from the ring; `bytes` may lie in the ring until it is freed. */
export interface RingReply {
  client: number;
  bytes: Uint8Array;
  /** Set once written or dropped; the ring frees replies in order. */
  done: boolean;
}

/** One side of the rings: the worker puts, the event loop takes and frees. */
export class ReplyRing {
  #bytes: Uint8Array;
  #records: Int32Array;
  #slots: Int32Array;
  /** Where this side puts or takes next, in bytes and in records. */
  #at = 0;
  #record = 0;
  /** Taken and not yet freed, oldest first (event loop side). */
  #taken: RingReply[] = [];

  /**
   * @param memory The rings' memory (see {@linkcode ringMemory}).
   * @param shared The slots' memory.
   */
  constructor(
    memory: { bytes: SharedArrayBuffer; records: SharedArrayBuffer },
    shared: SharedArrayBuffer,
  ) {
    this.#bytes = new Uint8Array(memory.bytes);
    this.#records = new Int32Array(memory.records);
    this.#slots = new Int32Array(shared);
  }

  /**
   * Appends one reply, if it fits now (worker side).
   *
   * @returns Whether it was put, and whether the event loop sleeps and must be told.
   */
  put(client: number, bytes: Uint8Array): { put: boolean; wake: boolean } {
    const used = Atomics.load(this.#slots, Slot.RING_BYTES);
    const records = Atomics.load(this.#slots, Slot.RING_RECORDS);
    if (bytes.length > this.#bytes.length - used || records === RING_RECORDS) {
      return { put: false, wake: false };
    }
    const size = this.#bytes.length;
    const first = Math.min(bytes.length, size - this.#at);
    this.#bytes.set(bytes.subarray(0, first), this.#at);
    this.#bytes.set(bytes.subarray(first), 0);
    this.#at = (this.#at + bytes.length) % size;
    this.#records[2 * this.#record] = client;
    this.#records[2 * this.#record + 1] = bytes.length;
    this.#record = (this.#record + 1) % RING_RECORDS;
    Atomics.add(this.#slots, Slot.RING_BYTES, bytes.length);
    Atomics.add(this.#slots, Slot.RING_RECORDS, 1); // published: the event loop may take it
    return { put: true, wake: Atomics.exchange(this.#slots, Slot.RING_ASLEEP, 0) === 1 };
  }

  /**
   * Puts one reply, waiting while the rings are full (worker side). The event loop takes
   * from them whenever it runs and frees what it has written, so a full ring waits for a
   * reader, as replies held at the bound do: it gives up when nothing was freed for
   * `stallMs`, or when `stopping()` says so.
   *
   * @returns Whether it was put, and whether the event loop sleeps and must be told.
   */
  hold(
    client: number,
    bytes: Uint8Array,
    stallMs: number,
    stopping: () => boolean,
  ): { put: boolean; wake: boolean } {
    for (let since = Date.now(); !stopping();) {
      const records = Atomics.load(this.#slots, Slot.RING_RECORDS);
      const result = this.put(client, bytes);
      if (result.put) return result;
      Atomics.wait(this.#slots, Slot.RING_RECORDS, records, Math.min(100, stallMs));
      if (Atomics.load(this.#slots, Slot.RING_RECORDS) < records) since = Date.now();
      else if (Date.now() - since >= stallMs) break;
    }
    return { put: false, wake: false };
  }

  /** Takes the replies put since the last call, oldest first (event loop side). */
  take(): RingReply[] {
    const ready = Atomics.load(this.#slots, Slot.RING_RECORDS) - this.#taken.length;
    const replies: RingReply[] = [];
    const size = this.#bytes.length;
    for (let i = 0; i < ready; i++) {
      const client = this.#records[2 * this.#record];
      const length = this.#records[2 * this.#record + 1];
      this.#record = (this.#record + 1) % RING_RECORDS;
      // In place, unless it wraps round the end (rare): then a copy.
      let bytes = this.#bytes.subarray(this.#at, this.#at + length);
      if (bytes.length < length) {
        bytes = new Uint8Array(length);
        bytes.set(this.#bytes.subarray(this.#at));
        bytes.set(this.#bytes.subarray(0, length - (size - this.#at)), size - this.#at);
      }
      this.#at = (this.#at + length) % size;
      const reply = { client, bytes, done: false };
      replies.push(reply);
      this.#taken.push(reply);
    }
    return replies;
  }

  /** Frees the room of replies marked done, in order (event loop side). */
  free(): void {
    let records = 0;
    let bytes = 0;
    while (this.#taken[records]?.done) bytes += this.#taken[records++].bytes.length;
    if (!records) return;
    this.#taken.splice(0, records);
    Atomics.sub(this.#slots, Slot.RING_BYTES, bytes);
    Atomics.sub(this.#slots, Slot.RING_RECORDS, records);
    Atomics.notify(this.#slots, Slot.RING_RECORDS);
  }

  /**
   * Says the event loop goes to sleep. Returns false when replies came meanwhile: take
   * them first.
   */
  sleep(): boolean {
    Atomics.store(this.#slots, Slot.RING_ASLEEP, 1);
    if (Atomics.load(this.#slots, Slot.RING_RECORDS) === this.#taken.length) return true;
    Atomics.store(this.#slots, Slot.RING_ASLEEP, 0);
    return false;
  }
}
