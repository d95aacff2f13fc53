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
 * Replies travel on the session's own FIFO: one handshake line of JSON, then the echo.
 *
 * @module
 */
import { PIPE_BUF } from "./fifo_file.ts";
import type { Framing } from "./framing.ts";

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
}

/** The first line on a session's reply FIFO. */
export type Handshake = { v: 1; id: number; window: number } | { v: 1; error: string };

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
