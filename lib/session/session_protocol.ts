/**
 * The session protocol's wire format (internal). See README "Sessions" for the picture.
 *
 * Requests travel on one shared FIFO, `DIR/NAME.ctl`, as records of at most `PIPE_BUF`
 * bytes, each written with a single `write(2)`: the kernel never interleaves them, however
 * many clients write at once. A message longer than one record is cut into several; the
 * server glues each session's records back into that session's byte stream.
 *
 *     offset 0  u16  magic 0xF1F0
 *     offset 2  u8   type: 1 HELLO, 2 DATA, 3 BYE
 *     offset 3  u8   0
 *     offset 4  u32  session id (0 in HELLO)
 *     offset 8  u16  payload length (at most 4084)
 *     offset 10 u16  0
 *     offset 12      payload
 *
 * Replies travel on the session's own FIFO: one handshake line of JSON, then either the
 * bare echo stream (a client that did not ask otherwise) or, for a client whose HELLO says
 * `replies: "records"`, reply records:
 *
 *     offset 0  u8   type: 1 DATA, 2 ACK, 3 REASON
 *     offset 1  u32  payload length
 *     offset 5       payload: reply bytes; u32 request bytes consumed; UTF-8 reason
 *
 * ACK records give a `listen()` client its credit: it keeps at most the handshake's window
 * of request bytes unacknowledged. An echo client's credit is the echo itself.
 *
 * @module
 */
import { PIPE_BUF } from "../fifo/fifo_file.ts";
import type { Framing } from "../framing/framing.ts";

/** Record header size. */
export const HEADER_SIZE = 12;
/** Largest payload of one record. */
export const MAX_RECORD_PAYLOAD: number = PIPE_BUF - HEADER_SIZE;
const MAGIC = 0xf1f0;

/** Record types. */
export const RecordType = { HELLO: 1, DATA: 2, BYE: 3 } as const;
/** A record type. */
export type RecordType = typeof RecordType[keyof typeof RecordType];

/** What a client says in its HELLO. */
export interface Hello {
  v: 1;
  /** The client's private session directory. */
  dir: string;
  framing: Framing;
  /**
   * `"records"`: the client reads its replies as reply records (see
   * {@linkcode ReplyDecoder}); absent, they are the bare echo stream.
   */
  replies?: "records";
}

/**
 * The first line on a session's reply FIFO. `records`: the replies that follow are reply
 * records. `ack`: the client's credit comes back in ACK records (a `listen()` server);
 * without it, every reply byte is credit (an echo).
 */
export type Handshake =
  | { v: 1; id: number; window: number; records?: true; ack?: true }
  | { v: 1; error: string };

/**
 * Reply record types: DATA carries reply bytes, ACK a u32 count of request bytes the
 * server has consumed (credit for the client's window), REASON the UTF-8 text of why the
 * server ends the session, written just before it does.
 */
export const ReplyType = { DATA: 1, ACK: 2, REASON: 3 } as const;
/** A reply record type. */
export type ReplyType = typeof ReplyType[keyof typeof ReplyType];

/** Reply record header: u8 type, u32 payload length. */
const REPLY_HEADER = 5;
/** The longest ACK or REASON payload a client accepts. */
const MAX_CONTROL_PAYLOAD = PIPE_BUF;

/** Encodes one reply record; a DATA payload may be any size (it is streamed). */
export function encodeReply(type: ReplyType, payload: Uint8Array): Uint8Array {
  const record = new Uint8Array(REPLY_HEADER + payload.length);
  record[0] = type;
  new DataView(record.buffer).setUint32(1, payload.length);
  record.set(payload, REPLY_HEADER);
  return record;
}

/** Encodes an ACK record for `bytes` consumed request bytes. */
export function encodeAck(bytes: number): Uint8Array {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, bytes);
  return encodeReply(ReplyType.ACK, payload);
}

/** What a {@linkcode ReplyDecoder} hands out. */
export interface ReplyHandler {
  /** Reply bytes, in order (a view valid during the call). */
  data(bytes: Uint8Array): void;
  /** The server consumed `bytes` more request bytes. */
  ack(bytes: number): void;
  /** Why the server ends the session. */
  reason(text: string): void;
}

/**
 * Cuts reply records out of a session's reply stream, which arrives in arbitrary pieces.
 * DATA bytes are passed through as they arrive, never buffered, so a reply may be larger
 * than any buffer; ACK and REASON payloads are small and collected whole.
 */
export class ReplyDecoder {
  #header = new Uint8Array(REPLY_HEADER);
  #headerFill = 0;
  #type = 0;
  #remaining = 0;
  #control: Uint8Array[] = [];

  /**
   * Feeds the next piece of the stream.
   *
   * @throws {RangeError} On an unknown record type or an oversized control record.
   */
  push(chunk: Uint8Array, handler: ReplyHandler): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#headerFill < REPLY_HEADER) {
        const take = Math.min(REPLY_HEADER - this.#headerFill, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerFill);
        this.#headerFill += take;
        at += take;
        if (this.#headerFill < REPLY_HEADER) return;
        this.#type = this.#header[0];
        this.#remaining = new DataView(this.#header.buffer).getUint32(1);
        if (this.#type < ReplyType.DATA || this.#type > ReplyType.REASON) {
          throw new RangeError(`Unknown reply record type ${this.#type}`);
        }
        if (this.#type !== ReplyType.DATA && this.#remaining > MAX_CONTROL_PAYLOAD) {
          throw new RangeError(`Reply control record of ${this.#remaining} bytes is too long`);
        }
      }
      const take = Math.min(this.#remaining, chunk.length - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.#remaining -= take;
      if (this.#type === ReplyType.DATA) {
        if (piece.length) handler.data(piece);
      } else {
        this.#control.push(piece.slice());
      }
      if (this.#remaining === 0) this.#finish(handler);
    }
  }

  #finish(handler: ReplyHandler): void {
    this.#headerFill = 0;
    if (this.#type === ReplyType.DATA) return;
    const payload = new Uint8Array(this.#control.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const piece of this.#control) {
      payload.set(piece, at);
      at += piece.length;
    }
    this.#control = [];
    if (this.#type === ReplyType.ACK) {
      if (payload.length !== 4) throw new RangeError("Malformed ACK reply record");
      handler.ack(new DataView(payload.buffer).getUint32(0));
    } else {
      handler.reason(new TextDecoder().decode(payload));
    }
  }
}

/** The directory-name prefix of sessions of server `name`. */
export function sessionPrefix(name: string): string {
  return `${name}.session-`;
}

/** Encodes one record; `payload` must fit in one. */
export function encodeRecord(type: RecordType, id: number, payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_RECORD_PAYLOAD) {
    throw new RangeError(`Record payload of ${payload.length} bytes exceeds ${MAX_RECORD_PAYLOAD}`);
  }
  const record = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(record.buffer);
  view.setUint16(0, MAGIC);
  view.setUint8(2, type);
  view.setUint32(4, id);
  view.setUint16(8, payload.length);
  record.set(payload, HEADER_SIZE);
  return record;
}

/**
 * Encodes a stream chunk of any size as DATA records packed back to back in one buffer;
 * write it in pieces that end on record boundaries of at most `PIPE_BUF` bytes.
 *
 * @returns The records and where each one ends.
 */
export function encodeData(id: number, bytes: Uint8Array): { records: Uint8Array; ends: number[] } {
  const count = Math.max(1, Math.ceil(bytes.length / MAX_RECORD_PAYLOAD));
  const records = new Uint8Array(bytes.length + count * HEADER_SIZE);
  const view = new DataView(records.buffer);
  const ends: number[] = [];
  let at = 0;
  for (let from = 0; from < bytes.length || ends.length === 0; from += MAX_RECORD_PAYLOAD) {
    const piece = bytes.subarray(from, from + MAX_RECORD_PAYLOAD);
    view.setUint16(at, MAGIC);
    view.setUint8(at + 2, RecordType.DATA);
    view.setUint32(at + 4, id);
    view.setUint16(at + 8, piece.length);
    records.set(piece, at + HEADER_SIZE);
    at += HEADER_SIZE + piece.length;
    ends.push(at);
  }
  return { records, ends };
}

/** Receives one decoded record; `payload` is a view valid only during the call. */
export type RecordCallback = (type: number, id: number, payload: Uint8Array) => void;

/**
 * Cuts the records out of one read of the request FIFO and returns how many bytes were not
 * records (a stray `echo hi > NAME.ctl`), which are dropped.
 *
 * Every record is one atomic write and a read of at least the pipe's capacity takes all
 * that is buffered, so a read never ends inside a record. Bytes that do not parse are
 * skipped up to the next place where a whole record does, so garbage written between two
 * clients' records costs neither of them anything.
 *
 * @param chunk One read, of a buffer of at least the pipe's capacity.
 * @param onRecord Called per record, in order.
 * @returns The count of dropped bytes.
 */
export function parseRecords(chunk: Uint8Array, onRecord: RecordCallback): number {
  const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const recordAt = (at: number) => {
    if (chunk.length - at < HEADER_SIZE) return -1;
    const length = view.getUint16(at + 8);
    const end = at + HEADER_SIZE + length;
    const valid = view.getUint16(at) === MAGIC && view.getUint8(at + 3) === 0 &&
      view.getUint16(at + 10) === 0 && length <= MAX_RECORD_PAYLOAD && end <= chunk.length;
    return valid ? end : -1;
  };
  let dropped = 0;
  let at = 0;
  while (at < chunk.length) {
    const end = recordAt(at);
    if (end < 0) {
      dropped++;
      at++;
      continue;
    }
    onRecord(view.getUint8(at + 2), view.getUint32(at + 4), chunk.subarray(at + HEADER_SIZE, end));
    at = end;
  }
  return dropped;
}
