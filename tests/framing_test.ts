/**
 * Unit tests of the pure parts: FrameDecoder, encodeFrame, printable and Echoer.
 *
 * @module
 */
import { concatBytes } from "../lib/framing/concat_bytes.ts";
import assert from "node:assert/strict";
import { FrameDecoder, type Framing } from "../lib/framing/framing.ts";
import { encodeFrame } from "../lib/framing/framing.ts";
import { printable } from "../lib/framing/printable.ts";
import { Echoer } from "../lib/framing/echoer.ts";

const enc = (text: string) => new TextEncoder().encode(text);
const bytes = (...values: number[]) => new Uint8Array(values);

/** Feeds `pieces` to a fresh decoder, returning copies of every wire and payload. */
function decode(
  framing: Framing,
  pieces: Uint8Array[],
  maxMessage?: number,
): { wires: Uint8Array[]; payloads: Uint8Array[]; decoder: FrameDecoder } {
  const decoder = new FrameDecoder(framing, { maxMessage });
  const wires: Uint8Array[] = [];
  const payloads: Uint8Array[] = [];
  for (const piece of pieces) {
    decoder.push(piece, (wire, payload) => {
      wires.push(wire.slice());
      payloads.push(payload.slice());
    });
  }
  return { wires, payloads, decoder };
}

/** Messages that exercise every branch: empty, text, invalid UTF-8, NUL, exactly 300 bytes. */
const PAYLOADS: Uint8Array[] = [
  enc("msg 1"),
  new Uint8Array(0),
  bytes(0xff, 0xfe, 0xc3, 0x28, 0x00, 0x80),
  enc("héllo wörld ✓"),
  new Uint8Array(300).fill(0x61),
  enc("x"),
];

/** The same payloads without the empty one (lines framing cannot be told "" from "\n" apart). */
const LINE_PAYLOADS = PAYLOADS.filter((p) => p.length > 0).concat([new Uint8Array(0)]);

function streamOf(framing: "lines" | "length", payloads: Uint8Array[]): Uint8Array {
  return concatBytes(payloads.map((p) => encodeFrame(framing, p)));
}

for (const framing of ["lines", "length"] as const) {
  const payloads = framing === "lines" ? LINE_PAYLOADS : PAYLOADS;
  const stream = streamOf(framing, payloads);
  const wires = payloads.map((p) => encodeFrame(framing, p));

  Deno.test(`FrameDecoder ${framing}: a coalesced stream yields every message`, () => {
    const got = decode(framing, [stream]);
    assert.deepEqual(got.payloads, payloads);
    assert.deepEqual(got.wires, wires);
    assert.equal(got.decoder.pending, 0);
  });

  Deno.test(`FrameDecoder ${framing}: every split point, and every pair of them`, () => {
    for (let i = 0; i <= stream.length; i++) {
      const got = decode(framing, [stream.subarray(0, i), stream.subarray(i)]);
      assert.deepEqual(got.payloads, payloads, `split at ${i}`);
      assert.deepEqual(got.wires, wires, `split at ${i}`);
    }
    // Three pieces: a carried header/line completed across two further pushes.
    const short = streamOf(framing, payloads.filter((p) => p.length < 100));
    const expected = payloads.filter((p) => p.length < 100);
    for (let i = 0; i <= short.length; i++) {
      for (let j = i; j <= short.length; j++) {
        const pieces = [short.subarray(0, i), short.subarray(i, j), short.subarray(j)];
        assert.deepEqual(decode(framing, pieces).payloads, expected, `split at ${i}, ${j}`);
      }
    }
  });

  Deno.test(`FrameDecoder ${framing}: byte at a time`, () => {
    const pieces = [...stream].map((b) => bytes(b));
    const got = decode(framing, pieces);
    assert.deepEqual(got.payloads, payloads);
    assert.deepEqual(got.wires, wires);
  });

  Deno.test(`FrameDecoder ${framing}: exactly maxMessage passes, one more is a RangeError`, () => {
    for (const max of [1, 5, 300]) {
      const ok = new Uint8Array(max).fill(0x62);
      const whole = encodeFrame(framing, ok);
      // Whole, byte at a time and at every split point.
      assert.deepEqual(decode(framing, [whole], max).payloads, [ok]);
      assert.deepEqual(decode(framing, [...whole].map((b) => bytes(b)), max).payloads, [ok]);
      for (let i = 0; i <= whole.length; i++) {
        const pieces = [whole.subarray(0, i), whole.subarray(i)];
        assert.deepEqual(decode(framing, pieces, max).payloads, [ok], `max ${max} split ${i}`);
      }
      const tooLong = encodeFrame(framing, new Uint8Array(max + 1).fill(0x62));
      assert.throws(() => decode(framing, [tooLong], max), RangeError);
      assert.throws(
        () => decode(framing, [...tooLong].map((b) => bytes(b)), max),
        new RegExp(`exceeds the maximum of ${max} bytes`),
      );
      for (let i = 0; i <= tooLong.length; i++) {
        const pieces = [tooLong.subarray(0, i), tooLong.subarray(i)];
        assert.throws(() => decode(framing, pieces, max), RangeError, `max ${max} split ${i}`);
      }
    }
  });

  Deno.test(`FrameDecoder ${framing}: a RangeError resets the decoder`, () => {
    const decoder = new FrameDecoder(framing, { maxMessage: 4 });
    const seen: string[] = [];
    const onMessage = (_: Uint8Array, p: Uint8Array) => seen.push(new TextDecoder().decode(p));
    decoder.push(encodeFrame(framing, enc("ab")), onMessage);
    assert.throws(() => decoder.push(encodeFrame(framing, enc("abcde")), onMessage), RangeError);
    assert.equal(decoder.pending, 0);
    decoder.push(encodeFrame(framing, enc("cd")), onMessage);
    assert.deepEqual(seen, ["ab", "cd"]);
  });
}

Deno.test("FrameDecoder lines: messages before an oversized one in the same piece are delivered", () => {
  const decoder = new FrameDecoder("lines", { maxMessage: 3 });
  const seen: string[] = [];
  assert.throws(
    () => decoder.push(enc("a\nbb\ncccc\nd\n"), (_, p) => seen.push(new TextDecoder().decode(p))),
    { name: "RangeError", message: "Message of 4 bytes or more exceeds the maximum of 3 bytes" },
  );
  assert.deepEqual(seen, ["a", "bb"]);
});

Deno.test("FrameDecoder lines: payload excludes \\n, keeps \\r; takeRest returns a last line", () => {
  const got = decode("lines", [enc("a\r\n\nb\nlast")]);
  assert.deepEqual(got.payloads, [enc("a\r"), new Uint8Array(0), enc("b")]);
  assert.deepEqual(got.wires, [enc("a\r\n"), enc("\n"), enc("b\n")]);
  assert.equal(got.decoder.pending, 4);
  assert.deepEqual(got.decoder.takeRest(), enc("last"));
  assert.equal(got.decoder.pending, 0);
  assert.deepEqual(got.decoder.takeRest(), new Uint8Array(0));
});

Deno.test("FrameDecoder length: empty messages, and takeRest of a partial header/payload", () => {
  const got = decode("length", [bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 7)]);
  assert.deepEqual(got.payloads, [new Uint8Array(0), new Uint8Array(0)]);
  assert.deepEqual(got.wires, [bytes(0, 0, 0, 0), bytes(0, 0, 0, 0)]);
  assert.equal(got.decoder.pending, 5);
  assert.deepEqual(got.decoder.takeRest(), bytes(0, 0, 0, 2, 7));
  // After takeRest the decoder starts on a fresh header.
  const seen: Uint8Array[] = [];
  got.decoder.push(bytes(0, 0, 0, 1, 9), (_, p) => seen.push(p.slice()));
  assert.deepEqual(seen, [bytes(9)]);
  const partialHeader = decode("length", [bytes(0, 0)]);
  assert.deepEqual(partialHeader.decoder.takeRest(), bytes(0, 0));
});

Deno.test("FrameDecoder length: a header of 2^31 or more is a RangeError, whole or split", () => {
  for (const header of [bytes(0x80, 0, 0, 0), bytes(0xff, 0xff, 0xff, 0xff)]) {
    // Even with the largest maxMessage there is.
    const pieces = [[header], [...header].map((b) => bytes(b)), [
      header.subarray(0, 3),
      header.subarray(3),
    ]];
    for (const split of pieces) {
      assert.throws(() => decode("length", split, 0x7fffffff), {
        name: "RangeError",
        message: /Malformed length header 0x(80000000|ffffffff)/,
      });
    }
  }
  // 2^31 - 1 is a valid header: more than maxMessage, so "too long", not "malformed".
  assert.throws(() => decode("length", [bytes(0x7f, 0xff, 0xff, 0xff)]), {
    name: "RangeError",
    message: "Message of 2147483647 bytes or more exceeds the maximum of 1048576 bytes",
  });
});

Deno.test("FrameDecoder: invalid UTF-8 and every byte value pass byte-exact", () => {
  const all = new Uint8Array(256).map((_, i) => i);
  const noNewline = all.filter((b) => b !== 0x0a);
  assert.deepEqual(decode("length", [encodeFrame("length", all)]).payloads, [all]);
  assert.deepEqual(decode("lines", [encodeFrame("lines", noNewline)]).payloads, [noNewline]);
  assert.deepEqual(decode("raw", [all]).payloads, [all]);
});

Deno.test("FrameDecoder raw: each push is one message; an empty push is none", () => {
  const got = decode("raw", [enc("msg 1"), new Uint8Array(0), enc("a\nb\n"), bytes(0xff)]);
  assert.deepEqual(got.payloads, [enc("msg 1"), enc("a\nb\n"), bytes(0xff)]);
  assert.deepEqual(got.wires, got.payloads);
  assert.equal(got.decoder.pending, 0);
  assert.deepEqual(decode("raw", [new Uint8Array(8)], 8).payloads, [new Uint8Array(8)]);
  assert.throws(() => decode("raw", [new Uint8Array(9)], 8), {
    name: "RangeError",
    message: "Message of 9 bytes or more exceeds the maximum of 8 bytes",
  });
});

Deno.test("FrameDecoder: complete messages are views of the pushed piece (no copy)", () => {
  const piece = enc("ab\ncd\n");
  const decoder = new FrameDecoder("lines");
  const views: Uint8Array[] = [];
  decoder.push(piece, (wire) => views.push(wire));
  assert.equal(views.length, 2);
  for (const view of views) assert.equal(view.buffer, piece.buffer);
});

Deno.test("FrameDecoder: constructor validates framing and maxMessage", () => {
  assert.throws(() => new FrameDecoder("bogus" as Framing), {
    name: "TypeError",
    message: 'Unknown framing "bogus": expected one of lines, length, raw',
  });
  for (const maxMessage of [0, -1, 1.5, 2 ** 31, NaN]) {
    assert.throws(() => new FrameDecoder("lines", { maxMessage }), TypeError, `${maxMessage}`);
  }
  assert.equal(new FrameDecoder("length", { maxMessage: 2 ** 31 - 1 }).maxMessage, 2 ** 31 - 1);
  assert.equal(new FrameDecoder("raw").maxMessage, 1 << 20);
});

Deno.test("encodeFrame: lines, length (big-endian header) and raw", () => {
  assert.deepEqual(encodeFrame("lines", enc("hi")), enc("hi\n"));
  assert.deepEqual(encodeFrame("lines", new Uint8Array(0)), enc("\n"));
  assert.throws(() => encodeFrame("lines", enc("a\nb")), TypeError);
  assert.deepEqual(encodeFrame("length", new Uint8Array(0)), bytes(0, 0, 0, 0));
  assert.deepEqual(encodeFrame("length", enc("hi")), bytes(0, 0, 0, 2, 0x68, 0x69));
  const big = new Uint8Array(0x010203);
  assert.deepEqual(encodeFrame("length", big).subarray(0, 4), bytes(0, 1, 2, 3));
  assert.equal(encodeFrame("length", big).length, 0x010203 + 4);
  const raw = enc("a\nb");
  assert.deepEqual(encodeFrame("raw", raw), raw);
});

Deno.test("printable: text as is; controls, backslash and invalid UTF-8 escaped", () => {
  assert.equal(printable(enc("msg 1")), "msg 1");
  assert.equal(printable(enc("héllo ✓ 😀")), "héllo ✓ 😀");
  assert.equal(printable(enc("a\nb\rc\td")), "a\\nb\\rc\\td");
  assert.equal(printable(bytes(0x00, 0x01, 0x1b, 0x1f, 0x7f)), "\\x00\\x01\\x1b\\x1f\\x7f");
  assert.equal(printable(enc("a\\nb")), "a\\\\nb"); // a real backslash is not mistaken for \n
  assert.equal(printable(bytes(0xff)), "\\xff");
  assert.equal(printable(bytes(0x68, 0x69, 0x0a, 0xff)), "hi\\n\\xff");
  assert.equal(printable(bytes(0xc3, 0x28)), "\\xc3("); // bad continuation byte
  assert.equal(printable(bytes(0xc0, 0x80)), "\\xc0\\x80"); // overlong NUL
  assert.equal(printable(bytes(0xed, 0xa0, 0x80)), "\\xed\\xa0\\x80"); // UTF-16 surrogate
  assert.equal(printable(bytes(0xf0, 0x9f, 0x98)), "\\xf0\\x9f\\x98"); // truncated at the end
  assert.equal(printable(bytes(0xc3, 0xa9, 0xff, 0x0a, 0xc3, 0xa9)), "é\\xff\\né"); // mixed
  assert.equal(printable(new Uint8Array(0)), "");
  // Never a raw newline or ESC in the result, whatever the bytes.
  const all = new Uint8Array(256).map((_, i) => i);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(printable(all), /[\x00-\x1f\x7f]/);
});

// Regression: C1 controls (well-formed UTF-8, e.g. U+0085 NEL, U+009B CSI) used to reach
// the log raw, though printable() promises a string without control characters.
Deno.test("printable: C1 control characters (U+0080..U+009F) are escaped too", () => {
  const out = printable(bytes(0x61, 0xc2, 0x85, 0x62, 0xc2, 0x9b, 0xc2, 0xa0));
  assert.equal(out, "a\\u0085b\\u009b\u00a0"); // U+00A0 (no-break space) is not a control
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(out, /[\x00-\x1f\x7f-\x9f]/);
});

Deno.test("Echoer: one feed returns every complete message byte-exact, in one batch", () => {
  for (const framing of ["lines", "length"] as const) {
    const payloads = framing === "lines" ? LINE_PAYLOADS : PAYLOADS;
    const stream = streamOf(framing, payloads);
    const echoer = new Echoer(framing);
    const reply = echoer.feed(stream);
    assert.deepEqual(reply, stream);
    assert.equal(reply.buffer, stream.buffer, "a contiguous run is a view, not a copy");
    assert.equal(echoer.messages, payloads.length);
    assert.equal(echoer.bytes, payloads.reduce((n, p) => n + p.length, 0));
    assert.equal(echoer.exitRequested, false);
    assert.equal(echoer.failure, undefined);
  }
});

Deno.test("Echoer: every split point echoes the whole stream byte-exact", () => {
  for (const framing of ["lines", "length"] as const) {
    const payloads = framing === "lines" ? LINE_PAYLOADS : PAYLOADS;
    const stream = streamOf(framing, payloads);
    for (let i = 0; i <= stream.length; i++) {
      const echoer = new Echoer(framing);
      // Copy each reply at once: it is only valid until the next feed.
      const first = echoer.feed(stream.subarray(0, i)).slice();
      const second = echoer.feed(stream.subarray(i)).slice();
      assert.deepEqual(concatBytes([first, second]), stream, `${framing} split at ${i}`);
    }
    const echoer = new Echoer(framing);
    const out = [...stream].map((b) => echoer.feed(bytes(b)).slice());
    assert.deepEqual(concatBytes([...out]), stream, `${framing} byte at a time`);
  }
});

Deno.test("Echoer: lines without a log (scanned in place) match the decoder's path exactly", () => {
  // The logging Echoer goes through FrameDecoder message by message; the quiet one scans
  // lines itself. Random streams cut at random points must give the same echo, counts,
  // exit and failure, whatever the chunking.
  let seed = 42;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let round = 0; round < 300; round++) {
    const parts: number[] = [];
    const lines = random(40);
    for (let i = 0; i < lines; i++) {
      const kind = random(40);
      const line = kind === 0 ? [...enc("exit")] : kind === 1 ? new Array(30).fill(0x78) : [];
      for (let j = random(kind === 2 ? 3 : 12); j > 0; j--) line.push(0x61 + random(3));
      parts.push(...line, 0x0a);
    }
    for (let j = random(6); j > 0; j--) parts.push(0x62);
    const stream = new Uint8Array(parts);
    const cuts = [0, ...Array.from({ length: random(6) }, () => random(stream.length + 1))]
      .sort((a, b) => a - b);
    cuts.push(stream.length);
    const run = (echoer: Echoer) => {
      const out = cuts.slice(1).map((end, i) => echoer.feed(stream.subarray(cuts[i], end)).slice());
      return {
        echo: [...concatBytes(out)],
        messages: echoer.messages,
        bytes: echoer.bytes,
        exit: echoer.exitRequested,
        failure: echoer.failure?.message,
      };
    };
    const options = { maxMessage: 25 };
    const quiet = run(new Echoer("lines", options));
    assert.deepEqual(
      quiet,
      run(new Echoer("lines", { ...options, logMessages: true })),
      `${round}`,
    );
  }
});

Deno.test("Echoer: a carried message followed by complete ones is copied in order", () => {
  const echoer = new Echoer("lines");
  assert.deepEqual(echoer.feed(enc("ab")), new Uint8Array(0));
  assert.deepEqual(echoer.feed(enc("c\nd\ne\nf")).slice(), enc("abc\nd\ne\n"));
  assert.deepEqual(echoer.feed(enc("\n")).slice(), enc("f\n"));
  assert.equal(echoer.messages, 4);
  assert.equal(echoer.bytes, 6);
});

Deno.test("Echoer: the exit word stops on equality only, and nothing after it is echoed", () => {
  const echoer = new Echoer("lines", { logMessages: true });
  const reply = echoer.feed(enc("exit now\nexits\nxexit\nEXIT\nexit \nexit\nafter\n"));
  assert.deepEqual(reply, enc("exit now\nexits\nxexit\nEXIT\nexit \n"));
  assert.equal(echoer.exitRequested, true);
  assert.equal(echoer.messages, 5);
  assert.deepEqual(echoer.feed(enc("more\n")), new Uint8Array(0));
  assert.equal(
    echoer.takeLog(),
    "received msg: exit now\nreceived msg: exits\nreceived msg: xexit\nreceived msg: EXIT\n" +
      "received msg: exit \nreceived msg: exit\n",
  );
  assert.equal(echoer.takeLog(), "");
});

Deno.test("Echoer: the exit word in length and raw framing; a custom word", () => {
  const length = new Echoer("length");
  const stream = concatBytes([encodeFrame("length", enc("a")), encodeFrame("length", enc("exit"))]);
  assert.deepEqual(length.feed(stream), encodeFrame("length", enc("a")));
  assert.equal(length.exitRequested, true);

  const raw = new Echoer("raw");
  assert.deepEqual(raw.feed(enc("exit\n")), enc("exit\n")); // not equal: echoed
  assert.equal(raw.exitRequested, false);
  assert.deepEqual(raw.feed(enc("exit")), new Uint8Array(0));
  assert.equal(raw.exitRequested, true);

  const custom = new Echoer("lines", { exitWord: "bye" });
  assert.deepEqual(custom.feed(enc("exit\nbye\n")), enc("exit\n"));
  assert.equal(custom.exitRequested, true);
});

Deno.test("Echoer: exitWord '' disables the exit word", () => {
  const echoer = new Echoer("lines", { exitWord: "" });
  assert.deepEqual(echoer.feed(enc("exit\n\n")), enc("exit\n\n"));
  assert.equal(echoer.exitRequested, false);
  assert.equal(echoer.messages, 2);
});

Deno.test("Echoer: a failure keeps the earlier messages, then drops the stream until reset", () => {
  const echoer = new Echoer("lines", { maxMessage: 4, logMessages: true });
  assert.deepEqual(echoer.feed(enc("x")), new Uint8Array(0));
  const reply = echoer.feed(enc("y\ncd\ntoolong\nef\n")).slice();
  assert.deepEqual(reply, enc("xy\ncd\n"));
  assert.ok(echoer.failure instanceof RangeError);
  assert.equal(echoer.failure.message, "Message of 7 bytes or more exceeds the maximum of 4 bytes");
  assert.equal(echoer.takeLog(), "received msg: xy\nreceived msg: cd\n");
  assert.deepEqual(echoer.feed(enc("gh\n")), new Uint8Array(0));
  assert.equal(echoer.messages, 2);
  echoer.reset();
  assert.equal(echoer.failure, undefined);
  assert.deepEqual(echoer.feed(enc("ij\n")), enc("ij\n"));
  assert.equal(echoer.messages, 3);
});

Deno.test("Echoer: a malformed length header fails the stream", () => {
  const echoer = new Echoer("length");
  const reply = echoer.feed(
    concatBytes([encodeFrame("length", enc("ok")), bytes(0xff, 0, 0, 0, 1)]),
  );
  assert.deepEqual(reply, encodeFrame("length", enc("ok")));
  assert.match(echoer.failure?.message ?? "", /^Malformed length header 0xff000000/);
});

Deno.test("Echoer: log lines escape control bytes and invalid UTF-8", () => {
  const echoer = new Echoer("length", { logMessages: true });
  echoer.feed(encodeFrame("length", bytes(0x61, 0x0a, 0x1b, 0x5b, 0x32, 0x4a, 0xff, 0x5c)));
  assert.equal(echoer.takeLog(), "received msg: a\\n\\x1b[2J\\xff\\\\\n");
});

/** Feeds `pieces` to a decoder with `streamAbove`, reassembling each message from its pieces. */
function decodeStreamed(pieces: Uint8Array[], streamAbove: number, maxMessage?: number) {
  const decoder = new FrameDecoder("length", { streamAbove, maxMessage });
  const wires: Uint8Array[] = [];
  const messages: Uint8Array[] = [];
  let current: Uint8Array[] = [];
  for (const piece of pieces) {
    decoder.push(piece, (wire, payload, complete) => {
      wires.push(wire.slice());
      current.push(payload.slice());
      if (complete) {
        messages.push(concatBytes([...current]));
        current = [];
      }
    });
  }
  return { wires, messages, decoder, unfinished: current.length };
}

Deno.test("FrameDecoder length streamAbove: large messages come in pieces, byte-exact", () => {
  const big1 = new Uint8Array(40).map((_, i) => i);
  const big2 = new Uint8Array(41).map((_, i) => 255 - i);
  const payloads = [enc("abc"), big1, new Uint8Array(0), new Uint8Array(8).fill(1), big2, enc("z")];
  const stream = streamOf("length", payloads);
  const check = (pieces: Uint8Array[], what: string) => {
    const got = decodeStreamed(pieces, 8);
    assert.deepEqual(got.messages, payloads, what);
    assert.deepEqual(concatBytes([...got.wires]), stream, what);
    assert.equal(got.unfinished, 0, what);
    assert.equal(got.decoder.pending, 0, what);
  };
  check([stream], "whole");
  check([...stream].map((b) => bytes(b)), "byte at a time");
  for (let i = 0; i <= stream.length; i++) {
    check([stream.subarray(0, i), stream.subarray(i)], `split at ${i}`);
  }
  // A streamed message is still bounded by maxMessage, refused at its header.
  assert.throws(() => decodeStreamed([streamOf("length", [big1])], 8, 39), {
    name: "RangeError",
    message: "Message of 40 bytes or more exceeds the maximum of 39 bytes",
  });
});

// Regression: takeRest() used to clear only the held bytes, not a half-streamed message:
// the next frame was then taken as the rest of the old message.
Deno.test("FrameDecoder length streamAbove: takeRest forgets a half-streamed message", () => {
  const got = decodeStreamed([bytes(0, 0, 0, 10, 1, 2)], 4);
  assert.equal(got.decoder.pending, 8); // 8 bytes of the message still to come
  assert.deepEqual(got.decoder.takeRest(), new Uint8Array(0));
  assert.equal(got.decoder.pending, 0);
  const seen: Uint8Array[] = [];
  got.decoder.push(bytes(0, 0, 0, 1, 7), (_, p, complete) => complete && seen.push(p.slice()));
  assert.deepEqual(seen, [bytes(7)]);
});

Deno.test("Echoer length: large messages pass through streamed, byte-exact, counted once", () => {
  const big = new Uint8Array(40_000).map((_, i) => (i * 7) & 0xff);
  // The big message ends in "exit": a streamed piece equal to the word must not stop it.
  big.set(enc("exit"), big.length - 4);
  const payloads = [enc("a"), big, new Uint8Array(0), new Uint8Array(20_000).fill(9), enc("b")];
  const stream = streamOf("length", payloads);
  const ends = [0, 1, 4, 5, 6, 9, 4000, 40_004, 40_005, 40_009, stream.length - 4, stream.length];
  const splits = [...ends, ...ends.map((n) => n + 1), ...ends.map((n) => n - 1)]
    .filter((n) => n >= 0 && n <= stream.length);
  for (const i of splits) {
    for (const logMessages of [false, true]) {
      const echoer = new Echoer("length", { logMessages });
      const first = echoer.feed(stream.subarray(0, i)).slice();
      const second = echoer.feed(stream.subarray(i)).slice();
      assert.deepEqual(concatBytes([first, second]), stream, `split at ${i}, log ${logMessages}`);
      assert.equal(echoer.messages, payloads.length, `split at ${i}`);
      assert.equal(echoer.bytes, 60_002, `split at ${i}`);
      assert.equal(echoer.exitRequested, false, `split at ${i}`);
    }
  }
  // The last 4 bytes of the big message arrive alone: they are "exit", and not the word.
  const echoer = new Echoer("length");
  const at = 5 + 4 + big.length - 4;
  assert.deepEqual(echoer.feed(stream.subarray(0, at)).slice(), stream.subarray(0, at));
  assert.deepEqual(echoer.feed(stream.subarray(at, at + 4)), enc("exit"));
  assert.equal(echoer.exitRequested, false);
  // The word right after a streamed message still stops the echo.
  const withExit = streamOf("length", [big, enc("exit"), enc("after")]);
  const stopper = new Echoer("length");
  assert.deepEqual(stopper.feed(withExit).slice(), streamOf("length", [big]));
  assert.equal(stopper.exitRequested, true);
  assert.equal(stopper.messages, 1);
});

Deno.test("FrameDecoder length: a header that spells text names the likely framing mismatch", () => {
  for (const [input, max] of [["msg 1\n", 1 << 20], ["hello there\n", 1 << 30]] as const) {
    const decoder = new FrameDecoder("length", { maxMessage: max });
    assert.throws(
      () => decoder.push(enc(input), () => {}),
      {
        name: "RangeError",
        message: new RegExp(
          `the header reads "${input.slice(0, 4)}" as text: is the peer using lines framing\\?$`,
        ),
      },
    );
  }
  // A binary header too long for maxMessage gets no such hint.
  const decoder = new FrameDecoder("length", { maxMessage: 8 });
  assert.throws(() => decoder.push(bytes(0, 0, 1, 0), () => {}), {
    message: "Message of 256 bytes or more exceeds the maximum of 8 bytes",
  });
});

/** What an Echoer does with a stream that ends after `feed`: its echo, counts and failure. */
interface FinishCase {
  name: string;
  framing: Framing;
  maxMessage?: number;
  feed: Uint8Array;
  /** Everything echoed, the feeds' replies then finish()'s. */
  echo: Uint8Array;
  /** What finish() alone returns. */
  last: Uint8Array;
  messages: number;
  exit?: boolean;
  /** Its exact message, or a pattern where it depends on the pieces ("n bytes or more"). */
  failure?: string | RegExp;
}

const none = new Uint8Array(0);
const FINISH_CASES: FinishCase[] = [
  {
    name: "lines: a last line without \\n is echoed as sent",
    framing: "lines",
    feed: enc("a\nlast"),
    echo: enc("a\nlast"),
    last: enc("last"),
    messages: 2,
  },
  {
    name: "lines: a stream ending in \\n leaves nothing",
    framing: "lines",
    feed: enc("a\n\n"),
    echo: enc("a\n\n"),
    last: none,
    messages: 2,
  },
  {
    name: "lines: an empty stream leaves nothing",
    framing: "lines",
    feed: none,
    echo: none,
    last: none,
    messages: 0,
  },
  {
    name: "lines: a last line of exactly maxMessage bytes is echoed",
    framing: "lines",
    maxMessage: 4,
    feed: enc("abcd"),
    echo: enc("abcd"),
    last: enc("abcd"),
    messages: 1,
  },
  {
    name: "lines: the exit word as a last line without \\n still stops",
    framing: "lines",
    feed: enc("a\nexit"),
    echo: enc("a\n"),
    last: none,
    messages: 1,
    exit: true,
  },
  {
    name: "lines: after the exit word, the rest is not echoed",
    framing: "lines",
    feed: enc("exit\nrest"),
    echo: none,
    last: none,
    messages: 0,
    exit: true,
  },
  {
    name: "lines: after a failure, the rest is not echoed and the failure stays",
    framing: "lines",
    maxMessage: 2,
    feed: enc("ok\ntoolong\nx"),
    echo: enc("ok\n"),
    last: none,
    messages: 1,
    failure: /^Message of \d+ bytes or more exceeds the maximum of 2 bytes$/,
  },
  {
    name: "length: complete frames leave nothing",
    framing: "length",
    feed: concatBytes([encodeFrame("length", enc("a")), encodeFrame("length", none)]),
    echo: bytes(0, 0, 0, 1, 0x61, 0, 0, 0, 0),
    last: none,
    messages: 2,
  },
  {
    name: "length: after the exit word, a partial frame is no failure",
    framing: "length",
    feed: concatBytes([encodeFrame("length", enc("exit")), bytes(0, 0)]),
    echo: none,
    last: none,
    messages: 0,
    exit: true,
  },
  {
    name: "length: a partial header is refused",
    framing: "length",
    feed: bytes(0, 0),
    echo: none,
    last: none,
    messages: 0,
    failure: "The stream ended inside a message (2 bytes held or still expected)",
  },
  {
    name: "length: a partial payload is refused",
    framing: "length",
    feed: bytes(0, 0, 0, 3, 0x61),
    echo: none,
    last: none,
    messages: 0,
    failure: "The stream ended inside a message (5 bytes held or still expected)",
  },
  {
    name: "raw: nothing is ever pending",
    framing: "raw",
    feed: enc("a"),
    echo: enc("a"),
    last: none,
    messages: 1,
  },
];

for (const c of FINISH_CASES) {
  Deno.test(`Echoer finish: ${c.name}`, () => {
    // Whole and byte at a time; lines with and without a log (two code paths).
    for (const logMessages of [false, true]) {
      for (const pieces of [[c.feed], [...c.feed].map((b) => bytes(b))]) {
        const what = `log ${logMessages}, ${pieces.length} pieces`;
        const echoer = new Echoer(c.framing, { maxMessage: c.maxMessage, logMessages });
        const out = pieces.map((piece) => echoer.feed(piece).slice());
        const last = echoer.finish().slice();
        assert.deepEqual(last, c.last, what);
        assert.deepEqual(concatBytes([...out, last]), c.echo, what);
        assert.equal(echoer.messages, c.messages, what);
        assert.equal(echoer.exitRequested, c.exit ?? false, what);
        if (c.failure instanceof RegExp) {
          assert.match(echoer.failure?.message ?? "", c.failure, what);
        } else assert.equal(echoer.failure?.message, c.failure, what);
        // Whatever it ended with, finish() leaves nothing for the next stream.
        assert.deepEqual(echoer.finish(), none, what);
      }
    }
  });
}

Deno.test("Echoer finish: a large length message cut while streaming is refused", () => {
  const stream = encodeFrame("length", new Uint8Array(20_000).fill(7));
  const echoer = new Echoer("length"); // no log: messages over 16 KiB pass through in pieces
  assert.deepEqual(echoer.feed(stream.subarray(0, 10_004)).slice(), stream.subarray(0, 10_004));
  assert.deepEqual(echoer.finish(), none);
  assert.equal(
    echoer.failure?.message,
    "The stream ended inside a message (10000 bytes held or still expected)",
  );
});

Deno.test("Echoer reset: a partial message of the last stream is forgotten", () => {
  for (const framing of ["lines", "length"] as const) {
    const echoer = new Echoer(framing);
    const whole = encodeFrame(framing, enc("next"));
    assert.deepEqual(echoer.feed(encodeFrame(framing, enc("cut short")).subarray(0, 3)), none);
    echoer.reset();
    assert.deepEqual(echoer.feed(whole), whole, framing);
    assert.deepEqual(echoer.finish(), none, framing);
    assert.equal(echoer.failure, undefined, framing);
  }
  // A message cut while streaming (over 16 KiB, no log): the next stream's first message
  // is whole again, so it can be the exit word.
  const echoer = new Echoer("length");
  echoer.feed(encodeFrame("length", new Uint8Array(20_000)).subarray(0, 10_004));
  echoer.reset();
  assert.deepEqual(echoer.feed(encodeFrame("length", enc("exit"))), none);
  assert.equal(echoer.exitRequested, true);
});

Deno.test("Echoer: exactly maxMessage is echoed, one byte more fails, at every split point", () => {
  for (const framing of ["lines", "length"] as const) {
    for (const logMessages of [false, true]) {
      for (const max of [1, 5]) {
        const what = `${framing}, log ${logMessages}, max ${max}`;
        const ok = encodeFrame(framing, new Uint8Array(max).fill(0x62));
        const over = encodeFrame(framing, new Uint8Array(max + 1).fill(0x62));
        for (let i = 0; i <= over.length; i++) {
          const fits = new Echoer(framing, { maxMessage: max, logMessages });
          if (i <= ok.length) {
            const out = [ok.subarray(0, i), ok.subarray(i)].map((p) => fits.feed(p).slice());
            assert.deepEqual(concatBytes(out), ok, `${what}, split at ${i}`);
            assert.equal(fits.failure, undefined, `${what}, split at ${i}`);
          }
          const fails = new Echoer(framing, { maxMessage: max, logMessages });
          const out = [over.subarray(0, i), over.subarray(i)].map((p) => fails.feed(p).slice());
          assert.deepEqual(concatBytes(out), none, `${what}, split at ${i}`);
          assert.match(
            fails.failure?.message ?? "",
            new RegExp(`exceeds the maximum of ${max} bytes$`),
            `${what}, split at ${i}`,
          );
        }
      }
    }
  }
  // raw: a read is a message; more than maxMessage in one read fails.
  const raw = new Echoer("raw", { maxMessage: 3 });
  assert.deepEqual(raw.feed(enc("abc")), enc("abc"));
  assert.deepEqual(raw.feed(enc("abcd")), none);
  assert.equal(raw.failure?.message, "Message of 4 bytes or more exceeds the maximum of 3 bytes");
});

Deno.test("Echoer: zero-length messages are echoed and counted; an empty read is none", () => {
  const cases = [
    { framing: "lines", wire: enc("\n\n"), messages: 2 },
    { framing: "length", wire: bytes(0, 0, 0, 0, 0, 0, 0, 0), messages: 2 },
    { framing: "raw", wire: none, messages: 0 },
  ] as const;
  for (const { framing, wire, messages } of cases) {
    for (const logMessages of [false, true]) {
      const echoer = new Echoer(framing, { logMessages });
      assert.deepEqual(echoer.feed(wire), wire, framing);
      assert.deepEqual(echoer.feed(none), none, framing);
      assert.equal(echoer.messages, messages, framing);
      assert.equal(echoer.bytes, 0, framing);
      assert.equal(echoer.takeLog(), logMessages ? "received msg: \n".repeat(messages) : "");
    }
  }
});
