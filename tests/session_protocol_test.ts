/**
 * The session protocol's wire format, in-process: request records (`encodeRecord`,
 * `encodeData`, `parseRecords`) and reply records (`encodeReply`, `encodeAck`,
 * `ReplyDecoder`). Needs no permission.
 *
 * @module
 */
import assert from "node:assert/strict";
import { concatBytes } from "../lib/framing/concat_bytes.ts";
import { PIPE_BUF } from "../lib/fifo/fifo_file.ts";
import {
  encodeAck,
  encodeData,
  encodeRecord,
  encodeReply,
  HEADER_SIZE,
  MAX_RECORD_PAYLOAD,
  parseRecords,
  RecordType,
  ReplyDecoder,
  ReplyType,
  sessionPrefix,
} from "../lib/session/session_protocol.ts";

const enc = (text: string) => new TextEncoder().encode(text);
const bytes = (...values: number[]) => new Uint8Array(values);
/** `n` bytes that never spell the record magic, so a resync cannot start inside them. */
const filler = (n: number) => new Uint8Array(n).map((_, i) => 0x20 + (i % 90));

/** One record as `parseRecords` hands it out, payload copied. */
interface Parsed {
  type: number;
  id: number;
  payload: Uint8Array;
}

/** Runs `parseRecords` on one chunk: the records it delivered and the bytes it dropped. */
function parse(chunk: Uint8Array): { records: Parsed[]; dropped: number } {
  const records: Parsed[] = [];
  const dropped = parseRecords(chunk, (type, id, payload) => {
    records.push({ type, id, payload: payload.slice() });
  });
  return { records, dropped };
}

// ---------------------------------------------------------------- request records

const ROUND_TRIPS: Parsed[] = [
  { type: RecordType.HELLO, id: 0, payload: enc('{"v":1,"dir":"/tmp/x","framing":"lines"}') },
  { type: RecordType.DATA, id: 1, payload: enc("msg 1\n") },
  { type: RecordType.DATA, id: 0xffffffff, payload: new Uint8Array(0) },
  { type: RecordType.DATA, id: 7, payload: new Uint8Array(MAX_RECORD_PAYLOAD).fill(0xff) },
  { type: RecordType.BYE, id: 0x01020304, payload: new Uint8Array(0) },
  { type: RecordType.BYE, id: 2, payload: bytes(0, 0x0a, 0xf1, 0xf0) },
];

Deno.test("encodeRecord and parseRecords: every record type round-trips, alone and packed", () => {
  for (const record of ROUND_TRIPS) {
    const wire = encodeRecord(record.type as RecordType, record.id, record.payload);
    assert.equal(wire.length, HEADER_SIZE + record.payload.length);
    assert.ok(wire.length <= PIPE_BUF, "one record fits one atomic write");
    assert.deepEqual(parse(wire), { records: [record], dropped: 0 }, `type ${record.type}`);
  }
  const packed = concatBytes(
    ROUND_TRIPS.map((r) => encodeRecord(r.type as RecordType, r.id, r.payload)),
  );
  assert.deepEqual(parse(packed), { records: ROUND_TRIPS, dropped: 0 });
});

Deno.test("encodeRecord: the header layout is magic, type, 0, id, length, 0", () => {
  assert.deepEqual(
    encodeRecord(RecordType.DATA, 0x0a0b0c0d, enc("hi")),
    bytes(0xf1, 0xf0, 2, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0, 2, 0, 0, 0x68, 0x69),
  );
});

Deno.test("encodeRecord: a payload one byte over MAX_RECORD_PAYLOAD is a RangeError", () => {
  assert.equal(MAX_RECORD_PAYLOAD, PIPE_BUF - HEADER_SIZE);
  assert.throws(() => encodeRecord(RecordType.DATA, 1, new Uint8Array(MAX_RECORD_PAYLOAD + 1)), {
    name: "RangeError",
    message: `Record payload of ${MAX_RECORD_PAYLOAD + 1} bytes exceeds ${MAX_RECORD_PAYLOAD}`,
  });
});

Deno.test("encodeData: any size is cut into DATA records of at most PIPE_BUF, glued back exact", () => {
  const sizes = [0, 1, MAX_RECORD_PAYLOAD, MAX_RECORD_PAYLOAD + 1, 3 * MAX_RECORD_PAYLOAD + 5];
  for (const size of sizes) {
    const data = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
    const { records, ends } = encodeData(42, data);
    assert.equal(ends.length, Math.max(1, Math.ceil(size / MAX_RECORD_PAYLOAD)), `size ${size}`);
    assert.equal(ends.at(-1), records.length, `size ${size}`);
    // Each piece to write ends on a record boundary and fits one atomic write.
    let start = 0;
    const glued: Uint8Array[] = [];
    for (const end of ends) {
      assert.ok(end - start <= PIPE_BUF, `size ${size}: a piece of ${end - start} bytes`);
      const piece = parse(records.subarray(start, end));
      assert.equal(piece.dropped, 0, `size ${size}`);
      assert.deepEqual(piece.records.map((r) => [r.type, r.id]), [[RecordType.DATA, 42]]);
      glued.push(piece.records[0].payload);
      start = end;
    }
    assert.deepEqual(concatBytes(glued), data, `size ${size}`);
  }
});

/**
 * One record damaged in one way, whole in the chunk: `parseRecords` must drop every byte.
 * (A record cut short can only end a read: see the test of a read cut at any byte.)
 */
const MALFORMED: { name: string; chunk: Uint8Array }[] = [
  { name: "a wrong magic", chunk: patch(encodeRecord(2, 1, enc("x")), 1, 0xf1) },
  { name: "a non-zero byte 3", chunk: patch(encodeRecord(2, 1, enc("x")), 3, 1) },
  { name: "a non-zero byte 10", chunk: patch(encodeRecord(2, 1, enc("x")), 10, 1) },
  { name: "a non-zero byte 11", chunk: patch(encodeRecord(2, 1, enc("x")), 11, 1) },
  {
    name: "a declared length one over MAX_RECORD_PAYLOAD",
    chunk: oversized(MAX_RECORD_PAYLOAD + 1),
  },
  { name: "a declared length of 0xffff", chunk: oversized(0xffff) },
  { name: "stray text (echo hi > NAME.ctl)", chunk: enc("hi\n") },
];

/** `record` with byte `at` set to `value`. */
function patch(record: Uint8Array, at: number, value: number): Uint8Array {
  const copy = record.slice();
  copy[at] = value;
  return copy;
}

/** A DATA record declaring `length` payload bytes, with all of them present. */
function oversized(length: number): Uint8Array {
  const record = new Uint8Array(HEADER_SIZE + length);
  record.set(encodeRecord(RecordType.DATA, 1, new Uint8Array(0)));
  new DataView(record.buffer).setUint16(8, length);
  return record;
}

for (const { name, chunk } of MALFORMED) {
  Deno.test(`parseRecords: ${name} is dropped whole, and the records around it survive`, () => {
    assert.deepEqual(parse(chunk), { records: [], dropped: chunk.length });
    const before = encodeRecord(RecordType.HELLO, 0, enc("{}"));
    const after = encodeRecord(RecordType.BYE, 9, new Uint8Array(0));
    assert.deepEqual(parse(concatBytes([before, chunk, after])), {
      records: [
        { type: RecordType.HELLO, id: 0, payload: enc("{}") },
        { type: RecordType.BYE, id: 9, payload: new Uint8Array(0) },
      ],
      dropped: chunk.length,
    });
  });
}

Deno.test("parseRecords: an unknown record type is handed on as is (the caller judges it)", () => {
  const wire = encodeRecord(9 as RecordType, 5, enc("?"));
  assert.deepEqual(parse(wire), { records: [{ type: 9, id: 5, payload: enc("?") }], dropped: 0 });
});

Deno.test("parseRecords: a read cut at any byte delivers the whole records and drops the cut one", () => {
  const records = [
    { type: RecordType.HELLO, id: 0, payload: filler(20) },
    { type: RecordType.DATA, id: 3, payload: filler(7) },
    { type: RecordType.DATA, id: 3, payload: new Uint8Array(0) },
    { type: RecordType.BYE, id: 3, payload: filler(1) },
  ];
  const wires = records.map((r) => encodeRecord(r.type, r.id, r.payload));
  const stream = concatBytes(wires);
  const starts = wires.map((_, i) => wires.slice(0, i).reduce((n, w) => n + w.length, 0));
  for (let cut = 0; cut <= stream.length; cut++) {
    const head = parse(stream.subarray(0, cut));
    const tail = parse(stream.subarray(cut));
    const whole = (i: number) => starts[i] + wires[i].length <= cut || starts[i] >= cut;
    assert.deepEqual(
      [...head.records, ...tail.records],
      records.filter((_, i) => whole(i)),
      `cut at ${cut}`,
    );
    const cutRecord = wires.findIndex((_, i) => !whole(i));
    const lost = cutRecord < 0 ? 0 : wires[cutRecord].length;
    assert.equal(head.dropped + tail.dropped, lost, `cut at ${cut}`);
  }
});

Deno.test("sessionPrefix: session directories of server NAME start with NAME.session-", () => {
  assert.equal(sessionPrefix("pipe"), "pipe.session-");
});

// ------------------------------------------------------------------ reply records

/** Decodes `pieces` into one event list; DATA pieces are glued per run. */
function decode(pieces: Uint8Array[]): string[] {
  const decoder = new ReplyDecoder();
  const events: string[] = [];
  let data = "";
  const flush = () => {
    if (data) events.push(`data:${data}`);
    data = "";
  };
  for (const piece of pieces) {
    decoder.push(piece, {
      data: (bytes) => data += new TextDecoder().decode(bytes),
      ack: (n) => {
        flush();
        events.push(`ack:${n}`);
      },
      reason: (text) => {
        flush();
        events.push(`reason:${text}`);
      },
    });
  }
  flush();
  return events;
}

const stream = concatBytes([
  encodeReply(ReplyType.DATA, enc("hello ")),
  encodeReply(ReplyType.DATA, new Uint8Array(0)),
  encodeReply(ReplyType.DATA, enc("world")),
  encodeAck(70_000),
  encodeReply(ReplyType.DATA, enc("!")),
  encodeAck(0),
  encodeAck(0xffffffff),
  encodeReply(ReplyType.REASON, new Uint8Array(0)),
  encodeReply(ReplyType.REASON, enc("Dropped session 7: too long")),
]);
const expected = [
  "data:hello world",
  "ack:70000",
  "data:!",
  "ack:0",
  "ack:4294967295",
  "reason:",
  "reason:Dropped session 7: too long",
];

Deno.test("ReplyDecoder: whole, byte at a time, and at every split point", () => {
  assert.deepEqual(decode([stream]), expected);
  assert.deepEqual(decode([...stream].map((b) => new Uint8Array([b]))), expected);
  for (let at = 0; at <= stream.length; at++) {
    assert.deepEqual(decode([stream.subarray(0, at), stream.subarray(at)]), expected, `at ${at}`);
  }
});

Deno.test("encodeReply and encodeAck: u8 type, big-endian u32 length, payload", () => {
  assert.deepEqual(encodeReply(ReplyType.DATA, enc("hi")), bytes(1, 0, 0, 0, 2, 0x68, 0x69));
  assert.deepEqual(encodeAck(0x01020304), bytes(2, 0, 0, 0, 4, 1, 2, 3, 4));
  assert.deepEqual(encodeReply(ReplyType.REASON, new Uint8Array(0)), bytes(3, 0, 0, 0, 0));
});

Deno.test("ReplyDecoder: a DATA reply larger than any control bound streams through", () => {
  const big = new Uint8Array(3 * PIPE_BUF + 1).map((_, i) => i & 0xff);
  const record = encodeReply(ReplyType.DATA, big);
  const seen: Uint8Array[] = [];
  const decoder = new ReplyDecoder();
  const handler = { data: (b: Uint8Array) => seen.push(b.slice()), ack() {}, reason() {} };
  for (let at = 0; at < record.length; at += 1000) {
    decoder.push(record.subarray(at, at + 1000), handler);
  }
  assert.ok(seen.length > 1, "in pieces, as they arrive");
  assert.deepEqual(concatBytes(seen), big);
});

Deno.test("ReplyDecoder: a truncated record hands out nothing of a control payload", () => {
  for (const record of [encodeAck(5), encodeReply(ReplyType.REASON, enc("bye"))]) {
    for (let at = 0; at < record.length; at++) {
      assert.deepEqual(decode([record.subarray(0, at)]), [], `${record[0]} cut at ${at}`);
    }
  }
});

/** Reply streams a client must refuse, and the RangeError each gives. */
const BAD_REPLIES: { name: string; wire: Uint8Array; message: string }[] = [
  { name: "type 0", wire: bytes(0, 0, 0, 0, 0), message: "Unknown reply record type 0" },
  { name: "type 4", wire: bytes(4, 0, 0, 0, 0), message: "Unknown reply record type 4" },
  { name: "type 255", wire: bytes(255, 0, 0, 0, 1, 7), message: "Unknown reply record type 255" },
  {
    name: "a REASON one byte over PIPE_BUF",
    wire: encodeReply(ReplyType.REASON, new Uint8Array(PIPE_BUF + 1)),
    message: `Reply control record of ${PIPE_BUF + 1} bytes is too long`,
  },
  {
    name: "an ACK declaring 5000 bytes",
    wire: bytes(2, 0, 0, 0x13, 0x88),
    message: "Reply control record of 5000 bytes is too long",
  },
  {
    name: "an ACK of 3 bytes",
    wire: encodeReply(ReplyType.ACK, new Uint8Array(3)),
    message: "Malformed ACK reply record",
  },
  {
    name: "an ACK of 5 bytes",
    wire: encodeReply(ReplyType.ACK, new Uint8Array(5)),
    message: "Malformed ACK reply record",
  },
];

for (const { name, wire, message } of BAD_REPLIES) {
  Deno.test(`ReplyDecoder: ${name} is a RangeError, whole or byte at a time`, () => {
    assert.throws(() => decode([wire]), { name: "RangeError", message });
    assert.throws(() => decode([...wire].map((b) => bytes(b))), { name: "RangeError", message });
  });
}

Deno.test("ReplyDecoder: a REASON of exactly PIPE_BUF bytes is accepted", () => {
  const text = "r".repeat(PIPE_BUF);
  assert.deepEqual(decode([encodeReply(ReplyType.REASON, enc(text))]), [`reason:${text}`]);
});
