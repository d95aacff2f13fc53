/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The writing half of `load.ts`'s streamed workloads, on its own thread.
 *
 * @module
 */
import { FifoFile } from "../lib/fifo/fifo_file.ts";
import { streamUnit } from "./load.ts";

interface Job {
  mode: "pipelined" | "bulk";
  inPath: string;
  a: number;
  b: number;
  framing: string;
}

let job: Job | undefined;
let output: FifoFile | undefined;
let unit: Uint8Array | undefined;

// First the job: open the FIFO, build the data, answer "ready". Then "go": write it all,
// answer "done". The reader starts its clock at "go", so the worker's start-up (loading
// this module, opening) is not timed, as the C client's thread creation is hardly timed.
self.onmessage = (event: MessageEvent<Job | "go">) => {
  if (event.data !== "go") {
    job = event.data;
    output = FifoFile.openSync(job.inPath, { access: "write" });
    unit = streamUnit(job.mode, job.b, job.framing);
    self.postMessage("ready");
    return;
  }
  const { mode, a, b } = job!;
  if (mode === "pipelined") {
    // Batches of whole messages, one write per 64 KiB: the client half of the batching.
    const perWrite = Math.max(1, Math.floor(65536 / b));
    const batch = new Uint8Array(perWrite * b);
    for (let i = 0; i < perWrite; i++) batch.set(unit!, i * b);
    for (let left = a; left > 0; left -= perWrite) {
      output!.writeAllSync(left >= perWrite ? batch : batch.subarray(0, left * b));
    }
  } else {
    // TOTAL bytes exactly, as c_echo.c sends them: the last write may be a partial chunk.
    for (let sent = 0; sent < a; sent += b) {
      output!.writeAllSync(a - sent < b ? unit!.subarray(0, a - sent) : unit!);
    }
  }
  output!.close();
  self.postMessage("done");
};
