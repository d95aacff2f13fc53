/**
 * The command-line options every client driver (`session_driver.ts`, `soak_client.ts`)
 * takes to find a server and speak to it, for `parseArgs` from `node:util`; each driver
 * adds its own.
 *
 * @module
 */

/** `--dir` (required), `--name`, `--framing`, `--seed`. */
export const CONNECTION_OPTIONS = {
  dir: { type: "string" },
  name: { type: "string", default: "pipe" },
  framing: { type: "string", default: "lines" },
  seed: { type: "string", default: "1" },
} as const;
