/**
 * The seeded message sequences of the `echo` driver (`session_driver.ts`), and what they
 * add up to, for the parent's exact checks (`session_scenarios.ts`). No I/O.
 *
 * @module
 */
import type { Framing } from "../lib/framing/framing.ts";
import { Rng } from "./rng.ts";

/** Sizes every `echo` client starts with: the edges of records, PIPE_BUF and pipe buffers. */
export const EDGE_SIZES: readonly number[] = [
  0,
  1,
  4083,
  4084,
  4085,
  4096,
  4097,
  8168,
  65535,
  65536,
  65537,
  131072,
  262144,
];

/** How message sizes are drawn in `[0, max]`. */
export type SizeDistribution = "uniform" | "log";

/**
 * The seeded message sequence of one client; two instances with the same arguments yield
 * the same messages, so the receiver regenerates what the sender sent instead of storing
 * it. Sizes and contents come from two generators, so sizes alone replay cheaply.
 */
export class MessageSource {
  #sizes: Rng;
  #bytes: Rng;
  #framing: Framing;
  #maxSize: number;
  #dist: SizeDistribution;
  #index = 0;

  constructor(seed: number, framing: Framing, maxSize: number, dist: SizeDistribution) {
    this.#sizes = new Rng(seed);
    this.#bytes = new Rng(seed ^ 0x9e3779b9);
    this.#framing = framing;
    this.#maxSize = maxSize;
    this.#dist = dist;
  }

  /** The size of the next message (only sizes: use either this or `next`, not both). */
  nextSize(): number {
    const i = this.#index++;
    if (i < EDGE_SIZES.length && EDGE_SIZES[i] <= this.#maxSize) return EDGE_SIZES[i];
    const r = this.#sizes.float();
    if (this.#dist === "uniform") return Math.floor(r * (this.#maxSize + 1));
    // Log-uniform: as many tiny as huge messages, a mean far below the maximum.
    return Math.min(Math.floor(Math.pow(this.#maxSize + 2, r)) - 1, this.#maxSize);
  }

  /** The next message. */
  next(): Uint8Array {
    const size = this.nextSize();
    const bytes = new Uint8Array(size);
    const prng = this.#bytes;
    if (this.#framing === "lines") {
      // Printable ASCII (0x20..0x7e): never a newline.
      for (let i = 0; i < size; i++) bytes[i] = 0x20 + (prng.u32() % 95);
    } else {
      const words = new Uint32Array(bytes.buffer, 0, size >>> 2);
      for (let i = 0; i < words.length; i++) words[i] = prng.u32();
      for (let i = words.length * 4; i < size; i++) bytes[i] = prng.u32() & 0xff;
    }
    return bytes;
  }
}

/** The payload bytes of a client's first `count` messages. */
export function payloadBytes(
  seed: number,
  framing: Framing,
  maxSize: number,
  dist: SizeDistribution,
  count: number,
): number {
  const source = new MessageSource(seed, framing, maxSize, dist);
  let total = 0;
  for (let i = 0; i < count; i++) total += source.nextSize();
  return total;
}
