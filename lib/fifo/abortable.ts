/**
 * Races `promise` against `signal`: rejects with the signal's reason once it aborts. The
 * promise goes on; its later rejection is swallowed, since nobody awaits it any more.
 *
 * @example Usage
 * ```ts
 * import { abortable } from "./abortable.ts";
 * import assert from "node:assert/strict";
 * const never = new Promise<void>(() => {});
 * await assert.rejects(abortable(never, AbortSignal.timeout(10)), { name: "TimeoutError" });
 * ```
 *
 * @param promise The operation.
 * @param signal What may cut the wait short.
 * @returns The operation's result, if it comes first.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => {});
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() =>
    signal.removeEventListener("abort", onAbort)
  );
}

/**
 * Turns the reason of an `AbortSignal.timeout` into a `Deno.errors.TimedOut` that says what
 * was waited for; any other error is returned as it is.
 *
 * @example Usage
 * ```ts
 * import { explainTimeout } from "./abortable.ts";
 * const error = explainTimeout(new DOMException("", "TimeoutError"), 5000, "waiting for X");
 * console.log((error as Error).message); // "Timed out after 5000 ms waiting for X"
 * ```
 *
 * @param error What the wait rejected with.
 * @param timeout The timeout, in milliseconds.
 * @param what What was waited for.
 * @returns The error to throw.
 */
export function explainTimeout(error: unknown, timeout: number, what: string): unknown {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return new Deno.errors.TimedOut(`Timed out after ${timeout} ms ${what}`, { cause: error });
  }
  return error;
}
