/**
 * The one byte-for-byte comparison of the drivers (echo checks in `session_driver.ts`,
 * `soak_client.ts` and the fuzz model's `describeMismatch`).
 *
 * @module
 */

/** Where `a` and `b` first differ (a length counts as a difference at its end), or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
