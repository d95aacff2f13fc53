/**
 * Reads of a client's reply FIFO that never tie up more than a few of Deno's blocking
 * threads, however many connections a process holds. Internal.
 *
 * A read of a FIFO with nothing in it parks a thread of Deno's blocking pool, which every
 * file operation of the process shares: once about 32 are parked, nothing else runs, not
 * even `Deno.lstat`. So a read parks only while fewer than {@linkcode PARKED_READS_MAX}
 * reads of this process are parked; past that, it joins one poller that tries each
 * waiting FIFO without blocking, every 1 ms after a request went out on it, backing off
 * to every {@linkcode POLL_MAX_MS} while nothing comes. Nothing polls while no read waits.
 *
 * A read may also take what is already there without blocking (no thread hop), but a
 * non-blocking read that finds nothing costs about 15 µs here: Deno builds two errors
 * with their stack traces for `EAGAIN`. So a connection tries that only while it pays.
 *
 * @module
 */
import type { FifoFile } from "../fifo/fifo_file.ts";

/** Reads this process parks at most at once; Deno's blocking pool stalls near 32. */
export const PARKED_READS_MAX = 16;
/** The longest a polled read waits between tries, reached while nothing comes. */
export const POLL_MAX_MS = 5000;
const POLL_MIN_MS = 1;
/** After a try that found nothing, up to 2^6 - 1 reads skip the try. */
const MAX_MISSES = 6;

let parked = 0;

interface Waiting {
  file: FifoFile;
  buffer: Uint8Array;
  interval: number;
  due: number;
  resolve(n: number | null): void;
  reject(error: unknown): void;
}

const waiting = new Set<Waiting>();
let timer: ReturnType<typeof setTimeout> | undefined;
let timerDue = Infinity;

/** Sets the one timer to the earliest due read, unless it fires sooner already. */
function schedule(): void {
  let due = Infinity;
  for (const entry of waiting) due = Math.min(due, entry.due);
  if (due === Infinity || due >= timerDue) return;
  if (timer !== undefined) clearTimeout(timer);
  timerDue = due;
  timer = setTimeout(poll, Math.max(0, due - performance.now()));
}

function poll(): void {
  timer = undefined;
  timerDue = Infinity;
  const now = performance.now();
  for (const entry of waiting) {
    if (entry.due > now) continue;
    let n: number | null;
    try {
      // A connection closed meanwhile reads as end of file: nobody looks at it.
      n = entry.file.closed ? null : entry.file.readSync(entry.buffer);
    } catch (error) {
      waiting.delete(entry);
      entry.reject(error);
      continue;
    }
    if (n === 0) {
      entry.interval = Math.min(entry.interval * 2, POLL_MAX_MS);
      entry.due = now + entry.interval;
      continue;
    }
    waiting.delete(entry);
    entry.resolve(n);
  }
  schedule();
}

/** Reads one connection's reply FIFO (see the module doc). */
export class ReplyReader {
  /** The blocking read end. */
  readonly file: FifoFile;
  #poll: FifoFile | undefined;
  #misses = 0;
  #skip = 0;
  #entry: Waiting | undefined;

  /**
   * @param file The blocking read end.
   * @param poll A non-blocking read end of the same FIFO; without it, reads always park.
   */
  constructor(file: FifoFile, poll?: FifoFile) {
    this.file = file;
    this.#poll = poll;
  }

  /**
   * Reads once; one read at a time.
   *
   * @param buffer Where the bytes go.
   * @returns The byte count, or `null` at end of file.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    const poll = this.#poll;
    if (!poll) return await this.file.read(buffer);
    if (this.#skip > 0) {
      this.#skip--;
    } else {
      const n = poll.readSync(buffer);
      if (n !== 0) {
        this.#misses = 0;
        return n;
      }
      this.#misses = Math.min(this.#misses + 1, MAX_MISSES);
      this.#skip = (1 << this.#misses) - 1;
    }
    if (parked < PARKED_READS_MAX) {
      parked++;
      try {
        return await this.file.read(buffer);
      } finally {
        parked--;
      }
    }
    try {
      return await new Promise((resolve, reject) => {
        const due = performance.now() + POLL_MIN_MS;
        this.#entry = { file: poll, buffer, interval: POLL_MIN_MS, due, resolve, reject };
        waiting.add(this.#entry);
        schedule();
      });
    } finally {
      this.#entry = undefined;
    }
  }

  /** Says a request went out: a polled read tries again at once, and often. */
  expectReply(): void {
    const entry = this.#entry;
    if (!entry || entry.interval === POLL_MIN_MS) return;
    entry.interval = POLL_MIN_MS;
    entry.due = performance.now() + POLL_MIN_MS;
    schedule();
  }
}
