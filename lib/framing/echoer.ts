import { FrameDecoder, type Framing } from "./framing.ts";
import { printable } from "./printable.ts";

const NEWLINE = 0x0a;

/** Options for {@linkcode Echoer}. */
export interface EchoerOptions {
  /**
   * The largest payload accepted, in bytes.
   *
   * @default {1048576}
   */
  maxMessage?: number;
  /**
   * A message whose payload equals this word is not echoed and asks the server to stop;
   * `""` disables it.
   *
   * @default {"exit"}
   */
  exitWord?: string;
  /**
   * Collect a `received msg: …` line per message in {@linkcode Echoer.takeLog}.
   *
   * @default {false}
   */
  logMessages?: boolean;
}

/**
 * The echo step shared by every engine: frames a stream's chunks and returns, per chunk,
 * every complete message in one batch to write back with a single `write`.
 *
 * @example Usage
 * ```ts
 * import { Echoer } from "./echoer.ts";
 * import assert from "node:assert/strict";
 * const echoer = new Echoer("lines");
 * const reply = echoer.feed(new TextEncoder().encode("a\nb\nexit\nc\n"));
 * assert.deepEqual(new TextDecoder().decode(reply), "a\nb\n");
 * assert.deepEqual(echoer.exitRequested, true);
 * ```
 */
export class Echoer {
  /** Messages echoed so far. */
  messages = 0;
  /** Payload bytes echoed so far. */
  bytes = 0;
  /** Whether the exit word has arrived; nothing after it is echoed. */
  exitRequested = false;
  /** Why the stream was rejected (an oversized or malformed message), until `reset`. */
  failure: RangeError | undefined;
  #decoder: FrameDecoder;
  #exitWord: Uint8Array | undefined;
  #logMessages: boolean;
  /** Lines without a log: scanned in place, with no call or view per message. */
  #fastLines: boolean;
  #log: string[] = [];
  #out = new Uint8Array(0);
  #outLength = 0;
  #chunk: Uint8Array = new Uint8Array(0);
  #runStart = -1;
  #runEnd = -1;
  #copied = false;
  #streamed = false;
  #onMessage = (wire: Uint8Array, payload: Uint8Array, complete: boolean) =>
    this.#take(wire, payload, complete);

  /**
   * Makes an echo step.
   *
   * @param framing How messages are cut out of the stream.
   * @param options Bounds, exit word and logging.
   */
  constructor(framing: Framing, options: EchoerOptions = {}) {
    this.#logMessages = options.logMessages ?? false;
    this.#fastLines = framing === "lines" && !this.#logMessages;
    // Without a log line to print, large length-framed messages pass through in pieces,
    // never copied into a reassembly buffer.
    this.#decoder = new FrameDecoder(framing, {
      maxMessage: options.maxMessage,
      streamAbove: this.#logMessages ? Infinity : 16384,
    });
    const exitWord = options.exitWord ?? "exit";
    this.#exitWord = exitWord === "" ? undefined : new TextEncoder().encode(exitWord);
  }

  /** Forgets a partial message, for the next client's stream. */
  reset(): void {
    this.#decoder.reset();
    this.#streamed = false;
    this.failure = undefined;
  }

  /**
   * Feeds one chunk of the stream.
   *
   * @param chunk The bytes just read.
   * @returns The bytes to echo (possibly a view of `chunk`, valid until it is reused). When
   * a message is oversized or malformed, the messages before it are still returned and
   * {@linkcode Echoer.failure} says why the rest of the stream must be dropped.
   */
  feed(chunk: Uint8Array): Uint8Array {
    this.#begin(chunk);
    if (!this.exitRequested && !this.failure) {
      try {
        if (this.#fastLines) this.#feedLines(chunk);
        else this.#decoder.push(chunk, this.#onMessage);
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        this.failure = error;
      }
    }
    return this.#result();
  }

  /**
   * Ends the stream. In `lines` framing a last line without its `\n` is a message and is
   * echoed as sent (as std's `TextLineStream` treats it); in `length` framing an unfinished
   * message sets {@linkcode Echoer.failure}, so that it is refused with a log line rather
   * than lost without a word.
   *
   * @returns The bytes to echo (empty when nothing was pending).
   */
  finish(): Uint8Array {
    const pending = this.#decoder.pending;
    if (!pending || this.exitRequested || this.failure) {
      this.#decoder.reset();
      return new Uint8Array(0);
    }
    if (this.#decoder.framing === "lines") {
      const rest = this.#decoder.takeRest();
      this.#begin(rest);
      this.#take(rest, rest, true);
      return this.#result();
    }
    this.#decoder.reset();
    this.failure = new RangeError(
      `The stream ended inside a message (${pending} bytes held or still expected)`,
    );
    return new Uint8Array(0);
  }

  #begin(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.#runStart = this.#runEnd = -1;
    this.#outLength = 0;
    this.#copied = false;
  }

  #result(): Uint8Array {
    const chunk = this.#chunk;
    if (!this.#copied) {
      return this.#runStart < 0
        ? chunk.subarray(0, 0)
        : chunk.subarray(this.#runStart, this.#runEnd);
    }
    return this.#out.subarray(0, this.#outLength);
  }

  /**
   * Returns and clears the log lines collected since the last call.
   *
   * @returns `received msg: …` lines, each ending in `\n`.
   */
  takeLog(): string {
    if (!this.#log.length) return "";
    const text = this.#log.join("");
    this.#log = [];
    return text;
  }

  /**
   * `lines` framing without a log: what the decoder would do, but the complete lines of a
   * chunk are found with `indexOf` alone and echoed as one run of the chunk. A million
   * short lines a second cost a callback and two views each otherwise.
   */
  #feedLines(chunk: Uint8Array): void {
    const decoder = this.#decoder;
    let start = 0;
    if (decoder.pending) {
      // The end of a line begun in an earlier chunk: the decoder's carry completes it.
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) return decoder.push(chunk, this.#onMessage);
      decoder.push(chunk.subarray(0, nl + 1), this.#onMessage);
      start = nl + 1;
    }
    const last = chunk.lastIndexOf(NEWLINE);
    let end = start;
    let messages = 0;
    try {
      for (let at = start; at <= last;) {
        const nl = chunk.indexOf(NEWLINE, at);
        if (nl - at > decoder.maxMessage) {
          throw new RangeError(
            `Message of ${
              nl - at
            } bytes or more exceeds the maximum of ${decoder.maxMessage} bytes`,
          );
        }
        // Past the exit word lines are only checked, as the decoder does, not echoed.
        if (!this.exitRequested && this.#isExitAt(chunk, at, nl)) this.exitRequested = true;
        if (!this.exitRequested) {
          messages++;
          end = nl + 1;
        }
        at = nl + 1;
      }
    } finally {
      this.messages += messages;
      this.bytes += end - start - messages;
      this.#run(start, end);
    }
    if (Math.max(last + 1, start) < chunk.length) {
      decoder.push(chunk.subarray(Math.max(last + 1, start)), this.#onMessage);
    }
  }

  /** Echoes `chunk[from, to)`, after whatever this feed echoes already. */
  #run(from: number, to: number): void {
    if (from === to) return;
    if (this.#copied) return this.#append(this.#chunk.subarray(from, to));
    if (this.#runStart < 0) this.#runStart = from;
    this.#runEnd = to;
  }

  #isExitAt(chunk: Uint8Array, from: number, to: number): boolean {
    const word = this.#exitWord;
    if (!word || to - from !== word.length) return false;
    for (let i = 0; i < word.length; i++) if (chunk[from + i] !== word[i]) return false;
    return true;
  }

  #isExit(payload: Uint8Array): boolean {
    const word = this.#exitWord;
    if (!word || payload.length !== word.length) return false;
    for (let i = 0; i < word.length; i++) if (payload[i] !== word[i]) return false;
    return true;
  }

  #take(wire: Uint8Array, payload: Uint8Array, complete: boolean): void {
    if (this.exitRequested) return;
    const whole = !this.#streamed;
    this.#streamed = !complete;
    if (complete && whole && this.#isExit(payload)) {
      this.exitRequested = true;
      if (this.#logMessages) this.#log.push(`received msg: ${printable(payload)}\n`);
      return;
    }
    if (complete) this.messages++;
    this.bytes += payload.length;
    if (this.#logMessages) this.#log.push(`received msg: ${printable(payload)}\n`);
    const offset = wire.byteOffset - this.#chunk.byteOffset;
    const inChunk = wire.buffer === this.#chunk.buffer && offset >= 0 &&
      offset + wire.length <= this.#chunk.length;
    if (!this.#copied && inChunk && (this.#runStart < 0 || offset === this.#runEnd)) {
      if (this.#runStart < 0) this.#runStart = offset;
      this.#runEnd = offset + wire.length;
      return;
    }
    if (!this.#copied) {
      this.#copied = true;
      if (this.#runStart >= 0) this.#append(this.#chunk.subarray(this.#runStart, this.#runEnd));
    }
    this.#append(wire);
  }

  #append(bytes: Uint8Array): void {
    const need = this.#outLength + bytes.length;
    if (need > this.#out.length) {
      const grown = new Uint8Array(Math.max(need, this.#out.length * 2, 4096));
      grown.set(this.#out.subarray(0, this.#outLength));
      this.#out = grown;
    }
    this.#out.set(bytes, this.#outLength);
    this.#outLength = need;
  }
}
