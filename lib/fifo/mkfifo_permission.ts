/**
 * Whether this program may run `mkfifo` (internal): a server fails before touching
 * anything, with a message that names the flag, rather than deep inside `makeFifo`.
 *
 * @module
 */

/**
 * Throws unless `--allow-run=mkfifo` (or a wider `--allow-run`) is granted.
 *
 * @param what What needs it, for the message: `Cannot serve on "/tmp/pipe.in"`.
 * @throws {Deno.errors.NotCapable} Naming the flag to add.
 */
export function assertMkfifoAllowed(what: string): void {
  const state = Deno.permissions.querySync({ name: "run", command: "mkfifo" }).state;
  if (state === "granted") return;
  throw new Deno.errors.NotCapable(
    `${what}: making FIFOs needs run access to "mkfifo"; run Deno with --allow-run=mkfifo`,
  );
}
