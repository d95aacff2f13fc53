/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The writing half of `load.ts`'s streamed workloads, on its own thread.
 *
 * @module
 */
import { FifoFile } from "../lib/fifo_file.ts";
import { message } from "./load.ts";

interface Job {
  mode: "pipelined" | "bulk";
  inPath: string;
  a: number;
  b: number;
  framing: string;
}

self.onmessage = (event: MessageEvent<Job>) => {
  const { mode, inPath, a, b, framing } = event.data;
  using output = FifoFile.openSync(inPath, { access: "write" });
  if (mode === "pipelined") {
    // Batches of whole messages, one write per 64 KiB: the client half of the batching.
    const one = message(b);
    const perWrite = Math.max(1, Math.floor(65536 / b));
    const batch = new Uint8Array(perWrite * b);
    for (let i = 0; i < perWrite; i++) batch.set(one, i * b);
    for (let left = a; left > 0; left -= perWrite) {
      output.writeAllSync(left >= perWrite ? batch : batch.subarray(0, left * b));
    }
  } else {
    const chunk = message(b);
    if (framing === "length") new DataView(chunk.buffer).setUint32(0, b - 4);
    for (let sent = 0; sent < a; sent += b) output.writeAllSync(chunk);
  }
  self.postMessage("done");
};
