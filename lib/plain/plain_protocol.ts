/**
 * What the plain pair's two halves share: the input loop on its worker thread and the
 * output on the event loop. Internal.
 *
 * The input loop does not wait for the output while a client talks: it publishes what it
 * holds and the output's state in shared memory, and puts replies it could not write
 * itself in the reply ring. Between two clients it waits for the output to take the end
 * of the first (`ENDED`).
 *
 * @module
 */
import type { Framing } from "../framing/framing.ts";

/** Slots of the shared `Int32Array`. */
export const Slot = {
  /** Non-zero once the server is stopping. */
  STOP: 0,
  /** What the input loop is blocked in: a {@linkcode Blocked} value. */
  BLOCKED: 1,
  /** The client number the output holds a reader for (0: none). */
  READER: 2,
  /** Reply bytes posted to the output and not yet written or dropped. */
  HELD: 3,
  /** The last client number that had a reply reach its reader. */
  DELIVERED: 4,
  /**
   * The number of the client whose writer the input loop took last, stored the moment its
   * `open()` returns: a reader that arrives after a new writer is that writer's.
   */
  CLIENT: 5,
  /** The last client number the output opened `NAME.out` for; notified. */
  SERVED: 6,
  /**
   * The last client that ended with no reader left to claim `NAME.out`: none was there, or
   * the output already held that client's reader. Stored before the input loop waits for
   * the next writer: a reader that comes after is the next client's, whatever order its
   * messages reach the event loop in (and with no reader, the replies held go).
   */
  LEFT_ALONE: 7,
  /** Bytes in the reply ring (`reply_ring.ts`) not yet freed. */
  RING_BYTES: 8,
  /** Replies in the reply ring not yet freed; notified when they are. */
  RING_RECORDS: 9,
  /** 1 while the event loop takes nothing from the ring: a put must wake it. */
  RING_ASLEEP: 10,
  /**
   * The last client whose end the output has taken (and, its replies all out, closed
   * `NAME.out` on); notified. The input loop lets no new writer in before: that writer's
   * reader could open `NAME.out` in time to get this client's end of file.
   */
  ENDED: 11,
} as const;

/** How many slots {@linkcode Slot} uses. */
export const SLOTS = 12;

/** What the input loop is blocked in, so that a stop wakes just that call. */
export const Blocked = { NONE: 0, OPEN_INPUT: 1, READ: 2, NAP: 3 } as const;

/** What the input loop needs to know. */
export interface PlainConfig {
  /** The private path of the input FIFO (see `FifoKeeper`). */
  input: string;
  /** The private path of the output FIFO. */
  output: string;
  /** The public output path, for log lines. */
  outputName: string;
  framing: Framing;
  maxMessage: number;
  exitWord: string;
  logMessages: boolean;
  uid: number;
  /** Backs the `Int32Array` of {@linkcode Slot}s. */
  shared: SharedArrayBuffer;
  /** The reply ring's memory (`ringMemory` in `reply_ring.ts`). */
  ring: { bytes: SharedArrayBuffer; records: SharedArrayBuffer };
}

/** Counters of the plain pair. */
export interface PlainStats {
  /** Messages echoed. */
  messages: number;
  /** Payload bytes echoed. */
  bytes: number;
  /** Clients that sent at least one byte. */
  clients: number;
}

/** What the input loop tells the event loop, in order. */
export type InputEvent =
  /** A client opened the input: client number `client` begins. */
  | { type: "begin"; client: number }
  /** Replies wait in the reply ring, and the event loop was asleep. */
  | { type: "ring" }
  /**
   * `client` was refused: no more replies will come; its reader gets what was echoed
   * (unless `dropHeld`) and then end of file, while its input is drained.
   */
  | { type: "refused"; client: number; dropHeld: boolean }
  /**
   * The client's stream ended: close the output once its replies are out. `readerThere`:
   * the output held no open for it, and a reader was on `NAME.out` at that moment (looked
   * at before the next writer could come): that reader is this client's.
   */
  | { type: "end"; client: number; stats: PlainStats; readerThere: boolean }
  /** One log line about a client. */
  | { type: "client-error"; message: string }
  /** The exit word arrived (after `end`). */
  | { type: "exit" }
  | { type: "stopped" }
  | { type: "fatal"; message: string };
