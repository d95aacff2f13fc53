/**
 * FifoFile against path attacks, in-process with real FIFOs: what `lstat` said before the
 * open is not trusted; the opened handle is what gets verified.
 *
 * @module
 */
import assert from "node:assert/strict";
import { FifoFile } from "../lib/fifo/fifo_file.ts";
import { makeFifo } from "../lib/fifo/make_fifo.ts";
import { requires, tempDir, waitForThread } from "./helpers.ts";

/** A thread parked in `open()` of a FIFO, waiting for its peer. */
const PARKED = / wait_for_partner$/m;

const test = requires("--allow-run");

test("FifoFile: a FIFO swapped in while the open waits for its peer is refused", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/pipe.in`;
  await makeFifo(path);
  // A second name keeps the FIFO the open started on reachable after the swap.
  Deno.linkSync(path, `${path}.first`);
  const opening = FifoFile.open(path, { access: "read", timeout: 5000 });
  // Once the open is parked in the kernel, on the first FIFO, swap the path under it.
  await waitForThread(Deno.pid, PARKED, "the open to park");
  await makeFifo(`${tmp.path}/other`);
  Deno.renameSync(`${tmp.path}/other`, path);
  // A peer arrives: on the first FIFO, where the open is parked (or, had the machine been
  // too slow to park it before the swap, on the new one). Either way the open completes on
  // a FIFO that is not the one `lstat` saw, and is refused.
  const writers = [`${path}.first`, path].flatMap((target) => {
    try {
      return [FifoFile.openSync(target, { access: "write", nonblocking: true })];
    } catch {
      return []; // no reader parked there
    }
  });
  try {
    assert.equal(writers.length, 1);
    await assert.rejects(
      opening,
      /Cannot use FIFO ".*\/pipe\.in": it was replaced while being opened/,
    );
  } finally {
    for (const writer of writers) writer.close();
  }
});

test("FifoFile: symlinks (to a FIFO, to a file, dangling) are refused, nothing created", async () => {
  using tmp = tempDir();
  const fifo = `${tmp.path}/real`;
  await makeFifo(fifo);
  Deno.writeTextFileSync(`${tmp.path}/file`, "data");
  const cases = {
    "to-fifo": fifo,
    "to-file": `${tmp.path}/file`,
    "dangling": `${tmp.path}/missing`,
  };
  for (const [name, target] of Object.entries(cases)) {
    const link = `${tmp.path}/${name}`;
    // `ln -s`: Deno.symlink wants unscoped write access, which the tests do not have.
    const made = await new Deno.Command("ln", { args: ["-s", target, link] }).output();
    assert.equal(made.code, 0);
    for (const access of ["read", "write"] as const) {
      await assert.rejects(
        FifoFile.open(link, { access, timeout: 1000 }),
        new RegExp(`Cannot use FIFO ".*/${name}": it is a symlink`),
        `${name} ${access}`,
      );
    }
    assert.equal(Deno.readLinkSync(link), target, `${name} untouched`);
  }
  assert.equal(Deno.readTextFileSync(`${tmp.path}/file`), "data");
  assert.throws(() => Deno.lstatSync(`${tmp.path}/missing`), Deno.errors.NotFound);
});

test("FifoFile: a regular file, a directory and a 0644 FIFO are refused untouched", async () => {
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.path}/file`, "keep me");
  Deno.mkdirSync(`${tmp.path}/dir`);
  const loose = `${tmp.path}/loose`;
  const made = await new Deno.Command("mkfifo", { args: ["-m", "644", loose] }).output();
  assert.equal(made.code, 0);
  const expected = {
    file: "it is a regular file",
    dir: "it is a directory",
    loose: "its mode 0644 lets other users in (expected 0600)",
  };
  for (const [name, reason] of Object.entries(expected)) {
    const path = `${tmp.path}/${name}`;
    for (const access of ["read", "write"] as const) {
      await assert.rejects(
        FifoFile.open(path, { access, timeout: 1000 }),
        (error: Error) => error.message === `Cannot use FIFO "${path}": ${reason}`,
        `${name} ${access}`,
      );
    }
  }
  assert.equal(Deno.readTextFileSync(`${tmp.path}/file`), "keep me");
  assert.equal(Deno.statSync(loose).mode! & 0o777, 0o644);
});

test("FifoFile: a missing FIFO is an error naming it, and is not created", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/absent`;
  await assert.rejects(
    FifoFile.open(path, { access: "write", timeout: 1000 }),
    (error: Error) =>
      error instanceof Deno.errors.NotFound &&
      error.message === `Cannot open FIFO "${path}": it does not exist`,
  );
  assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
});

test("FifoFile: an open with no peer times out, and the parked open is released", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/lonely`;
  await makeFifo(path);
  await assert.rejects(
    FifoFile.open(path, { access: "read", timeout: 200 }),
    (error: Error) =>
      error instanceof Deno.errors.TimedOut &&
      error.message === `Timed out after 200 ms waiting for a writer on FIFO "${path}"`,
  );
  // Released: no thread of ours is parked any more, nobody holds the read end, so a
  // non-blocking writer finds no reader.
  await waitForThread(Deno.pid, PARKED, "the parked open to be released", { expect: false });
  assert.throws(
    () => FifoFile.openSync(path, { access: "write", nonblocking: true }),
    Deno.errors.NotConnected,
  );
});

test("FifoFile: a write with no reader left is an error naming the FIFO", async () => {
  using tmp = tempDir();
  const path = `${tmp.path}/pipe.in`;
  await makeFifo(path);
  const reading = FifoFile.open(path, { access: "read", timeout: 5000 });
  using writer = await FifoFile.open(path, { access: "write", timeout: 5000 });
  (await reading).close();
  const noReader = (error: Error) =>
    error instanceof Deno.errors.BrokenPipe &&
    error.message === `Cannot write FIFO "${path}": no reader` &&
    error.cause instanceof Deno.errors.BrokenPipe;
  await assert.rejects(writer.writeAll(new Uint8Array(8)), noReader);
  assert.throws(() => writer.writeAllSync(new Uint8Array(8)), noReader);
});
