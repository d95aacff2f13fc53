/**
 * Reads of a client's reply FIFO that never tie up more than a few of Deno's blocking
 * threads, however many connections a process holds. Internal.
 *
 * A read of a FIFO with nothing in it parks a thread of Deno's blocking pool, which every
 * file operation of the process shares: once about 32 are parked, nothing else runs, not
 * even `Deno.lstat`. So a read first takes what is there without blocking (no thread hop
 * at all), parks only while fewer than {@linkcode PARKED_READS_MAX} reads of this process
 * are parked, and otherwise joins one poller that tries every waiting FIFO on a timer:
 * every 1 ms while replies arrive or requests go out, backing off to every
 * {@linkcode POLL_MAX_MS} while nothing happens. Nothing polls while no read waits.
 *
 * @module
 */
import type { FifoFile } from "../fifo/fifo_file.ts";

/** Reads this process parks at most at once; Deno's blocking pool stalls near 32. */
export const PARKED_READS_MAX = 16;
/** The poller's longest interval, reached while no waiting FIFO gets anything. */
export const POLL_MAX_MS = 100;
const POLL_MIN_MS = 1;

let parked = 0;

interface Waiting {
  file: FifoFile;
  buffer: Uint8Array;
  resolve(n: number | null): void;
  reject(error: unknown): void;
}

const waiting = new Set<Waiting>();
let timer: ReturnType<typeof setTimeout> | undefined;
let interval = POLL_MIN_MS;

function schedule(ms: number): void {
  if (timer !== undefined) clearTimeout(timer);
  interval = ms;
  timer = setTimeout(poll, ms);
}

function poll(): void {
  timer = undefined;
  let got = false;
  for (const entry of waiting) {
    let n: number | null;
    try {
      // A connection closed meanwhile reads as end of file: nobody looks at it.
      n = entry.file.closed ? null : entry.file.readSync(entry.buffer);
    } catch (error) {
      waiting.delete(entry);
      entry.reject(error);
      continue;
    }
    if (n === 0) continue;
    waiting.delete(entry);
    entry.resolve(n);
    got = true;
  }
  if (waiting.size) schedule(got ? POLL_MIN_MS : Math.min(interval * 2, POLL_MAX_MS));
}

/**
 * Says a request went out: a reply is due soon, so a poller that has backed off polls
 * again at once, and often.
 */
export function expectReply(): void {
  if (waiting.size && interval > POLL_MIN_MS) schedule(POLL_MIN_MS);
}

/**
 * Reads once from a reply FIFO: what is there now, else a parked read of `reader` while
 * few are parked, else through the poller.
 *
 * @param reader The blocking read end.
 * @param poll A non-blocking read end of the same FIFO, or `undefined` to always park.
 * @param buffer Where the bytes go.
 * @returns The byte count, or `null` at end of file.
 */
export async function readReply(
  reader: FifoFile,
  poll: FifoFile | undefined,
  buffer: Uint8Array,
): Promise<number | null> {
  if (!poll) return await reader.read(buffer);
  const now = poll.readSync(buffer);
  if (now !== 0) return now;
  if (parked < PARKED_READS_MAX) {
    parked++;
    try {
      return await reader.read(buffer);
    } finally {
      parked--;
    }
  }
  return await new Promise((resolve, reject) => {
    waiting.add({ file: poll, buffer, resolve, reject });
    schedule(POLL_MIN_MS);
  });
}
