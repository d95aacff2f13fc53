/**
 * Whether two `stat` results name the very same file (device and inode). Internal.
 *
 * @module
 */

/**
 * Whether `a` and `b` are the same file: what tells a FIFO we opened from one put in its
 * place under the same name.
 *
 * @param a One file's info.
 * @param b The other's.
 * @returns `true` when device and inode match.
 */
export function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}
