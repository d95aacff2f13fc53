/**
 * Reply records (DATA, ACK, REASON) cut out of a stream that arrives in any pieces.
 * In-process; needs no permission.
 *
 * @module
 */
import assert from "node:assert/strict";
import { concatBytes } from "../lib/concat_bytes.ts";
import { encodeAck, encodeReply, ReplyDecoder, ReplyType } from "../lib/session_protocol.ts";

const enc = (text: string) => new TextEncoder().encode(text);

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
  encodeReply(ReplyType.REASON, enc("Dropped session 7: too long")),
]);
const expected = ["data:hello world", "ack:70000", "data:!", "reason:Dropped session 7: too long"];

Deno.test("ReplyDecoder: whole, byte at a time, and at every split point", () => {
  assert.deepEqual(decode([stream]), expected);
  assert.deepEqual(decode([...stream].map((b) => new Uint8Array([b]))), expected);
  for (let at = 0; at <= stream.length; at++) {
    assert.deepEqual(decode([stream.subarray(0, at), stream.subarray(at)]), expected, `at ${at}`);
  }
});

Deno.test("ReplyDecoder: an unknown type or an oversized control record is a RangeError", () => {
  assert.throws(() => decode([new Uint8Array([9, 0, 0, 0, 0])]), {
    name: "RangeError",
    message: "Unknown reply record type 9",
  });
  assert.throws(() => decode([encodeReply(ReplyType.REASON, new Uint8Array(5000))]), {
    name: "RangeError",
    message: "Reply control record of 5000 bytes is too long",
  });
  assert.throws(() => decode([encodeReply(ReplyType.ACK, new Uint8Array(3))]), {
    name: "RangeError",
    message: "Malformed ACK reply record",
  });
});
