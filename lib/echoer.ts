import { FrameDecoder, type Framing } from "./framing.ts";
import { printable } from "./printable.ts";

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
        this.#decoder.push(chunk, this.#onMessage);
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
