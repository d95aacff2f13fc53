const encoder = new TextEncoder();

/**
 * Writes all of `text` to standard output, looping over short writes, without a thread
 * hop: log lines keep their order with the echo that follows them.
 *
 * @example Usage
 * ```ts
 * import { writeStdoutSync } from "./write_stdout.ts";
 * writeStdoutSync("received msg: hi\n");
 * ```
 *
 * @param text The text to print, or bytes to write as they are.
 */
export function writeStdoutSync(text: string | Uint8Array): void {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  for (let done = 0; done < bytes.length;) done += Deno.stdout.writeSync(bytes.subarray(done));
}
