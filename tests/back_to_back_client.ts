/**
 * Plain-pair clients one right after another, as a shell loop of tiny clients would run
 * them but without a process start between: each opens `pipe.in` then `pipe.out` (the
 * seed's order), sends one line, reads its echo and closes both. Prints one JSON line:
 * how many clients got their line back, how many saw end of file before it (`eof`), how
 * many found no reader when they wrote (`epipe`), anything else (`other`), and the first
 * failure.
 *
 *     deno run --allow-read=DIR --allow-write=DIR tests/back_to_back_client.ts DIR COUNT [GAP_MS]
 *
 * @module
 */
import { FifoFile } from "../lib/fifo/fifo_file.ts";

/** What {@linkcode backToBack} counted. */
export interface BackToBack {
  clients: number;
  ok: number;
  eof: number;
  epipe: number;
  other: number;
  first?: string;
}

/** Runs `count` clients on the plain pair in `dir`, `gapMs` apart. */
export function backToBack(dir: string, count: number, gapMs = 0): BackToBack {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const result: BackToBack = { clients: count, ok: 0, eof: 0, epipe: 0, other: 0 };
  for (let i = 0; i < count; i++) {
    if (gapMs) Atomics.wait(pause, 0, 0, gapMs);
    const line = `client ${i}\n`;
    let got = "";
    let failure: "eof" | "epipe" | "other" | undefined;
    try {
      using input = FifoFile.openSync(`${dir}/pipe.in`, { access: "write" });
      using output = FifoFile.openSync(`${dir}/pipe.out`, { access: "read" });
      input.writeAllSync(encoder.encode(line));
      while (got.length < line.length) {
        const n = output.readSync(buffer);
        if (n === null) break;
        got += decoder.decode(buffer.subarray(0, n));
      }
      if (got !== line) failure = got.length < line.length ? "eof" : "other";
    } catch (error) {
      failure = error instanceof Deno.errors.BrokenPipe ? "epipe" : "other";
      got += ` (${(error as Error).message})`;
    }
    if (!failure) {
      result.ok++;
      continue;
    }
    result[failure]++;
    result.first ??= `client ${i}: ${failure}, read ${JSON.stringify(got)}`;
  }
  return result;
}

if (import.meta.main) {
  const [dir, count, gap] = Deno.args;
  console.log(JSON.stringify(backToBack(dir, Number(count), Number(gap ?? 0))));
}
