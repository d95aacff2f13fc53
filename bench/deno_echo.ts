/**
 * Deno's own floor for the echo benchmark: what `c_echo.c server` does, in Deno, with
 * blocking `readSync`/`writeSync` on the main thread and nothing else: no framing, no
 * bounds, no checks, one client. Nobody should serve with it; beside the C pair it shows
 * how much of a gap is the runtime's, and beside ours how much is our server's.
 *
 *     deno run --allow-read=DIR --allow-write=DIR bench/deno_echo.ts IN OUT
 *
 * @module
 */
if (import.meta.main) {
  const [input, output] = Deno.args;
  // Input first, as every client opens them.
  using reader = Deno.openSync(input, { read: true });
  using writer = Deno.openSync(output, { write: true });
  const buffer = new Uint8Array(65536);
  for (let n; (n = reader.readSync(buffer)) !== null;) {
    for (let done = 0; done < n;) done += writer.writeSync(buffer.subarray(done, n));
  }
}
