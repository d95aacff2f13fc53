/**
 * Starts a module worker from bundled source text, loaded from a `blob:` URL.
 *
 * A worker loaded from `new URL("./w.ts", import.meta.url)` needs read access to its files,
 * which a program scoped to `--allow-read=/tmp` does not have. The same module bundled by
 * `deno task bundle` into a string and loaded from a `blob:` URL needs none. Internal.
 *
 * @module
 */

/**
 * Starts a module worker running `source`.
 *
 * Permissions: none beyond what the worker's code itself uses (it inherits the program's).
 *
 * @example Usage
 * ```ts
 * import { startBundledWorker } from "./bundled_worker.ts";
 * const worker = startBundledWorker("self.postMessage(6 * 7);", "answer");
 * const answer = await new Promise((resolve) => worker.onmessage = (e) => resolve(e.data));
 * worker.terminate();
 * console.log(answer); // 42
 * ```
 *
 * @param source The bundled module's JavaScript.
 * @param name The worker's name, shown in stack traces.
 * @returns The started worker.
 */
export function startBundledWorker(source: string, name: string): Worker {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return new Worker(url, { type: "module", name });
  } finally {
    // The worker has fetched its source by the time the constructor returns.
    URL.revokeObjectURL(url);
  }
}
