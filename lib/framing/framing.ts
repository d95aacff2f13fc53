/** How messages are cut out of a FIFO's byte stream. */
export type Framing = "lines" | "length" | "raw";

/**
 * Every {@linkcode Framing}, in the order the CLIs list them.
 *
 * @example Check a framing name from the command line
 * ```ts
 * import { type Framing, FRAMINGS } from "./framing.ts";
 * import assert from "node:assert/strict";
 * const isFraming = (text: string): text is Framing => FRAMINGS.includes(text as Framing);
 * assert.ok(isFraming("length"));
 * assert.ok(!isFraming("json"));
 * ```
 */
export const FRAMINGS: readonly Framing[] = ["lines", "length", "raw"];

/**
 * The default bound on one message's payload: 1 MiB.
 *
 * @example A decoder's bound, unless told otherwise
 * ```ts
 * import { DEFAULT_MAX_MESSAGE, FrameDecoder } from "./framing.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new FrameDecoder("lines").maxMessage, DEFAULT_MAX_MESSAGE);
 * assert.equal(DEFAULT_MAX_MESSAGE, 1_048_576);
 * ```
 */
export const DEFAULT_MAX_MESSAGE: number = 1 << 20;

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * The largest payload accepted, in bytes; a longer message makes
   * {@linkcode FrameDecoder.push} throw a `RangeError`, so memory stays bounded.
   *
   * @default {1048576}
   */
  maxMessage?: number;
  /**
   * In `length` framing, hand out a message whose declared length exceeds this many bytes
   * in pieces as it arrives (`complete` is `false` for all but the last) instead of
   * buffering it whole: an echo can then pass large messages through without copying.
   *
   * @default {Infinity}
   */
  streamAbove?: number;
}

/**
 * Receives one decoded message, or with `streamAbove` a piece of one (`complete` is then
 * `false` for all pieces but the last). The views are only valid during the call.
 */
export type MessageCallback = (wire: Uint8Array, payload: Uint8Array, complete: boolean) => void;

const NEWLINE = 0x0a;
const HEADER = 4;

/**
 * A length header whose four bytes are printable text ("msg ", "hell") is almost always a
 * peer writing text lines to a `length` server: say so, since the bare number misleads.
 */
function textHint(header: Uint8Array): string {
  const isText = header.length === HEADER &&
    header.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === NEWLINE);
  if (!isText) return "";
  const shown = new TextDecoder().decode(header).replaceAll("\t", "\\t").replaceAll("\n", "\\n");
  return `; the header reads "${shown}" as text: is the peer using lines framing?`;
}

/**
 * Cuts complete messages out of a byte stream that arrives in arbitrary pieces.
 *
 * - `lines`: a message is the bytes up to and including `\n`; the payload excludes it.
 * - `length`: a 4-byte big-endian length, then that many payload bytes (the framing of
 *   Python's `multiprocessing.connection.Connection.send_bytes`).
 * - `raw`: every piece pushed is one message, as the seed article's `read(1024)` does.
 *
 * Messages split over pieces or coalesced in one are framed exactly; complete messages
 * inside a piece are handed out as views of it, without copying.
 *
 * @example Usage
 * ```ts
 * import { FrameDecoder } from "./framing.ts";
 * import assert from "node:assert/strict";
 * const decoder = new FrameDecoder("lines");
 * const seen: string[] = [];
 * const text = (b: Uint8Array) => new TextDecoder().decode(b);
 * decoder.push(new TextEncoder().encode("a\nb"), (_, p) => seen.push(text(p)));
 * decoder.push(new TextEncoder().encode("c\n"), (_, p) => seen.push(text(p)));
 * assert.deepEqual(seen, ["a", "bc"]);
 * ```
 */
export class FrameDecoder {
  /** The framing this decoder applies. */
  readonly framing: Framing;
  /** The largest payload accepted, in bytes. */
  readonly maxMessage: number;
  readonly #streamAbove: number;
  #carry = new Uint8Array(0);
  #carried = 0;
  #streaming = 0;

  /**
   * Makes a decoder.
   *
   * @param framing The framing to apply.
   * @param options Its bounds.
   */
  constructor(framing: Framing, options: FrameDecoderOptions = {}) {
    if (!FRAMINGS.includes(framing)) {
      throw new TypeError(`Unknown framing "${framing}": expected one of ${FRAMINGS.join(", ")}`);
    }
    const maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
    if (!Number.isSafeInteger(maxMessage) || maxMessage < 1 || maxMessage > 0x7fffffff) {
      throw new TypeError(`Invalid maxMessage "${maxMessage}": expected 1 to 2147483647 bytes`);
    }
    this.framing = framing;
    this.maxMessage = maxMessage;
    this.#streamAbove = options.streamAbove ?? Infinity;
  }

  /**
   * Bytes of an unfinished message: those held back, plus, for a message being streamed
   * (`streamAbove`), those still to come.
   */
  get pending(): number {
    return this.#carried + this.#streaming;
  }

  /**
   * Returns the bytes of an unfinished message and forgets them: at the end of a stream,
   * a last line without its `\n`, say.
   *
   * @returns A copy of the held bytes (empty when none).
   */
  takeRest(): Uint8Array {
    const rest = this.#carry.slice(0, this.#carried);
    this.#carried = 0;
    this.#streaming = 0;
    return rest;
  }

  /** Forgets any partial message, for a new stream. */
  reset(): void {
    this.#carried = 0;
    this.#streaming = 0;
    if (this.#carry.length > 65536) this.#carry = new Uint8Array(0);
  }

  /**
   * Feeds the next piece of the stream.
   *
   * @param chunk The bytes just read.
   * @param onMessage Called once per complete message, in order.
   * @throws {RangeError} When a message is longer than `maxMessage` or its length header
   * is malformed; the decoder is then reset and the stream should be dropped.
   */
  push(chunk: Uint8Array, onMessage: MessageCallback): void {
    try {
      if (this.framing === "raw") {
        if (chunk.length > this.maxMessage) this.#tooLong(chunk.length);
        if (chunk.length) onMessage(chunk, chunk, true);
      } else if (this.framing === "lines") {
        this.#pushLines(chunk, onMessage);
      } else {
        this.#pushLength(chunk, onMessage);
      }
    } catch (error) {
      if (error instanceof RangeError) this.reset();
      throw error;
    }
  }

  #tooLong(atLeast: number): never {
    throw new RangeError(
      `Message of ${atLeast} bytes or more exceeds the maximum of ${this.maxMessage} bytes`,
    );
  }

  #keep(bytes: Uint8Array): void {
    const need = this.#carried + bytes.length;
    if (need > this.#carry.length) {
      const grown = new Uint8Array(Math.max(need, this.#carry.length * 2, 256));
      grown.set(this.#carry.subarray(0, this.#carried));
      this.#carry = grown;
    }
    this.#carry.set(bytes, this.#carried);
    this.#carried = need;
  }

  #pushLines(chunk: Uint8Array, onMessage: MessageCallback): void {
    let start = 0;
    if (this.#carried) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) {
        if (this.#carried + chunk.length > this.maxMessage) {
          this.#tooLong(this.#carried + chunk.length);
        }
        this.#keep(chunk);
        return;
      }
      if (this.#carried + nl > this.maxMessage) this.#tooLong(this.#carried + nl);
      this.#keep(chunk.subarray(0, nl + 1));
      const wire = this.#carry.subarray(0, this.#carried);
      this.#carried = 0;
      onMessage(wire, wire.subarray(0, wire.length - 1), true);
      start = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl < 0) break;
      if (nl - start > this.maxMessage) this.#tooLong(nl - start);
      onMessage(chunk.subarray(start, nl + 1), chunk.subarray(start, nl), true);
      start = nl + 1;
    }
    if (start < chunk.length) {
      if (chunk.length - start > this.maxMessage) this.#tooLong(chunk.length - start);
      this.#keep(chunk.subarray(start));
    }
  }

  #declared(bytes: Uint8Array, at: number): number {
    const length = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) |
      bytes[at + 3]) >>> 0;
    if (length > 0x7fffffff) {
      throw new RangeError(
        `Malformed length header 0x${
          length.toString(16)
        }: lengths of 2^31 or more are not supported${textHint(bytes.subarray(at, at + HEADER))}`,
      );
    }
    if (length > this.maxMessage) {
      try {
        this.#tooLong(length);
      } catch (error) {
        (error as Error).message += textHint(bytes.subarray(at, at + HEADER));
        throw error;
      }
    }
    return length;
  }

  #pushLength(chunk: Uint8Array, onMessage: MessageCallback): void {
    let start = 0;
    if (this.#streaming) {
      const take = Math.min(this.#streaming, chunk.length);
      this.#streaming -= take;
      const piece = chunk.subarray(0, take);
      onMessage(piece, piece, this.#streaming === 0);
      start = take;
    }
    if (this.#carried) {
      // Complete the carried header first, then its payload, copying only what is needed.
      if (this.#carried < HEADER) {
        const take = Math.min(HEADER - this.#carried, chunk.length);
        this.#keep(chunk.subarray(0, take));
        start = take;
        if (this.#carried < HEADER) return;
      }
      const total = HEADER + this.#declared(this.#carry, 0);
      if (total - HEADER > this.#streamAbove) {
        const header = this.#carry.subarray(0, HEADER);
        this.#carried = 0;
        this.#streaming = total - HEADER;
        onMessage(header, header.subarray(HEADER), false);
        return this.#pushLength(chunk.subarray(start), onMessage);
      }
      const take = Math.min(total - this.#carried, chunk.length - start);
      this.#keep(chunk.subarray(start, start + take));
      start += take;
      if (this.#carried < total) return;
      const wire = this.#carry.subarray(0, total);
      this.#carried = 0;
      onMessage(wire, wire.subarray(HEADER), true);
    }
    while (chunk.length - start >= HEADER) {
      const length = this.#declared(chunk, start);
      const end = start + HEADER + length;
      if (end > chunk.length) {
        if (length <= this.#streamAbove) break;
        this.#streaming = end - chunk.length;
        onMessage(chunk.subarray(start), chunk.subarray(start + HEADER), false);
        return;
      }
      onMessage(chunk.subarray(start, end), chunk.subarray(start + HEADER, end), true);
      start = end;
    }
    if (start < chunk.length) this.#keep(chunk.subarray(start));
  }
}

/**
 * Frames one payload for the wire.
 *
 * @example Usage
 * ```ts
 * import { encodeFrame } from "./framing.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeFrame("length", new Uint8Array([7])), new Uint8Array([0, 0, 0, 1, 7]));
 * ```
 *
 * @param framing The framing to apply.
 * @param payload The message; in `lines` framing it must not contain `\n`.
 * @returns The bytes to write.
 */
export function encodeFrame(framing: Framing, payload: Uint8Array): Uint8Array {
  if (framing === "raw") return payload;
  if (framing === "lines") {
    if (payload.includes(NEWLINE)) {
      throw new TypeError("Cannot frame a message containing a newline in lines framing");
    }
    const wire = new Uint8Array(payload.length + 1);
    wire.set(payload);
    wire[payload.length] = NEWLINE;
    return wire;
  }
  if (payload.length > 0x7fffffff) {
    throw new RangeError(`Message of ${payload.length} bytes is too long for a length header`);
  }
  const wire = new Uint8Array(HEADER + payload.length);
  new DataView(wire.buffer).setUint32(0, payload.length);
  wire.set(payload, HEADER);
  return wire;
}
