/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The plain pair's worker thread: runs the echo loop with blocking `readSync`/`writeSync`,
 * 2 syscalls per echo and no thread hop, parking only this thread. Internal; started by
 * {@linkcode PlainEngine}, which stops it by setting the stop flag and waking its call.
 *
 * @module
 */
import { runPlainLoopSync } from "./plain_loop.ts";
import type { PlainEngineConfig, PlainEngineEvent } from "./plain_engine.ts";

function post(event: PlainEngineEvent): void {
  self.postMessage(event);
}

self.onmessage = (event: MessageEvent<PlainEngineConfig>) => {
  const config = event.data;
  const flags = new Int32Array(config.control);
  try {
    runPlainLoopSync(
      config,
      () => Atomics.load(flags, 0) !== 0,
      post,
      new Int32Array(config.control, 4, 1),
    );
    post({ type: "stopped" });
  } catch (error) {
    post({ type: "fatal", message: (error as Error)?.message ?? String(error) });
  }
};
