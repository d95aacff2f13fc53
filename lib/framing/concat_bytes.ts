/**
 * Joins byte arrays into one; a single part is returned as is, without copying. Given
 * `into`, the bytes go there when they fit (a buffer the caller reuses), else into a new
 * array.
 *
 * @example Usage
 * ```ts
 * import { concatBytes } from "./concat_bytes.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])]), new Uint8Array([1, 2, 3]));
 * const reused = new Uint8Array(8);
 * const joined = concatBytes([new Uint8Array([4]), new Uint8Array([5])], reused);
 * assert.deepEqual([joined, joined.buffer === reused.buffer], [new Uint8Array([4, 5]), true]);
 * ```
 *
 * @param parts The arrays, in order.
 * @param into Where to put them, when they fit: the result is then a view of it.
 * @returns Their bytes, back to back.
 */
export function concatBytes(parts: readonly Uint8Array[], into?: Uint8Array): Uint8Array {
  if (parts.length === 1) return parts[0];
  const length = parts.reduce((n, part) => n + part.length, 0);
  const out = into && length <= into.length ? into.subarray(0, length) : new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
