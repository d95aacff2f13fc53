/**
 * The reply ring (`lib/plain/reply_ring.ts`) with both of its sides in one thread, on the
 * shared memory the plain pair's worker and event loop share. Needs no permission.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ReplyRing, RING_RECORDS, ringMemory } from "../lib/plain/reply_ring.ts";
import { Slot, SLOTS } from "../lib/plain/plain_protocol.ts";

const enc = (text: string) => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The worker's side and the event loop's side of one ring of `maxMessage`. */
function sides(maxMessage = 16) {
  const memory = ringMemory(maxMessage);
  const shared = new SharedArrayBuffer(SLOTS * 4);
  const slots = new Int32Array(shared);
  return {
    worker: new ReplyRing(memory, shared),
    loop: new ReplyRing(memory, shared),
    slots,
    size: memory.bytes.byteLength,
  };
}

Deno.test("ReplyRing: replies come out in order, with their client, lying in the ring", () => {
  const { worker, loop, slots } = sides();
  assert.equal(worker.put(1, enc("a\n")).put, true);
  assert.equal(worker.put(2, enc("bb\n")).put, true);
  const taken = loop.take();
  assert.deepEqual(taken.map((r) => [r.client, dec(r.bytes)]), [[1, "a\n"], [2, "bb\n"]]);
  assert.ok(taken.every((r) => r.bytes.buffer instanceof SharedArrayBuffer), "no copy");
  // Consecutive replies follow on in memory: the output writes them as one.
  assert.equal(taken[1].bytes.byteOffset, taken[0].bytes.byteOffset + taken[0].bytes.length);
  assert.deepEqual(loop.take(), [], "each reply is taken once");
  assert.equal(Atomics.load(slots, Slot.RING_BYTES), 5, "not freed until done");
});

Deno.test("ReplyRing: room is freed in order, once every older reply is done", () => {
  const { worker, loop, size } = sides();
  const half = new Uint8Array(size / 2);
  assert.equal(worker.put(1, half).put, true);
  assert.equal(worker.put(1, half).put, true);
  assert.equal(worker.put(1, enc("x")).put, false, "full");
  const [first, second] = loop.take();
  second.done = true;
  loop.free();
  assert.equal(worker.put(1, enc("x")).put, false, "the older one still holds its room");
  first.done = true;
  loop.free();
  assert.equal(worker.put(1, enc("x")).put, true);
});

Deno.test("ReplyRing: a reply that wraps round the end comes out whole, as a copy", () => {
  const { worker, loop, size } = sides();
  worker.put(1, new Uint8Array(size - 3));
  const [filler] = loop.take();
  filler.done = true;
  loop.free();
  assert.equal(worker.put(7, enc("wrapped\n")).put, true);
  const [wrapped] = loop.take();
  assert.equal(wrapped.client, 7);
  assert.equal(dec(wrapped.bytes), "wrapped\n");
  assert.ok(!(wrapped.bytes.buffer instanceof SharedArrayBuffer));
});

Deno.test("ReplyRing: at most RING_RECORDS replies, however small", () => {
  const { worker } = sides(1 << 20);
  const one = enc("x");
  for (let i = 0; i < RING_RECORDS; i++) assert.equal(worker.put(1, one).put, true);
  assert.equal(worker.put(1, one).put, false);
});

Deno.test("ReplyRing: a put wakes the event loop only when it said it sleeps", () => {
  const { worker, loop } = sides();
  assert.equal(loop.sleep(), true);
  assert.deepEqual(worker.put(1, enc("a")), { put: true, wake: true });
  assert.deepEqual(worker.put(1, enc("b")), { put: true, wake: false }, "woken once");
  assert.equal(loop.sleep(), false, "replies wait: take them first");
  assert.deepEqual(worker.put(1, enc("c")), { put: true, wake: false }, "it did not sleep");
  assert.equal(loop.take().length, 3);
  assert.equal(loop.sleep(), true);
});

Deno.test("ReplyRing: hold gives up when nothing is freed for stallMs, or on a stop", () => {
  const { worker } = sides();
  worker.put(1, new Uint8Array(16 + 2 * 65536));
  assert.deepEqual(worker.hold(1, enc("x"), 200, () => false), { put: false, wake: false });
  assert.deepEqual(worker.hold(1, enc("x"), 60_000, () => true), { put: false, wake: false });
  const { worker: roomy } = sides();
  assert.equal(roomy.hold(1, enc("x"), 200, () => false).put, true);
});
