/**
 * The demo: a server and the seed's client talking over FIFOs in a private directory,
 * each started with the card's permissions, both outputs shown with a label, then a check
 * that no FIFO is left behind.
 *
 *     deno task demo
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type Proc, spawn } from "./tools/spawn.ts";

const CARD = ["--allow-read=/tmp", "--allow-write=/tmp", "--allow-run=mkfifo"];

/** Prints each whole line of a stream's pieces with `[name] ` in front. */
function labelled(name: string): (text: string) => void {
  let partial = "";
  return (text) => {
    const lines = (partial + text).split("\n");
    partial = lines.pop()!;
    for (const line of lines) console.log(`[${name}] ${line}`);
  };
}

/** Starts one of our CLIs with the card's permissions, its output labelled. */
function start(script: "server.ts" | "client.ts", args: string[]): Proc {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const label = labelled(script.replace(".ts", ""));
  return spawn(Deno.execPath(), ["run", ...CARD, path, ...args], {
    deadline: 60_000,
    onStdout: label,
    onStderr: label,
  });
}

async function waitFor(path: string, ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    try {
      if (Deno.lstatSync(path).isFifo) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`The server did not create "${path}" within ${ms} ms`);
}

async function main(): Promise<number> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "fifo-demo-" });
  await using server = start("server.ts", ["--dir", dir]);
  try {
    await waitFor(`${dir}/pipe.ctl`, 10_000); // the FIFO it publishes last
    await using client = start("client.ts", ["--dir", dir, "--interval", "300"]);
    const clientStatus = await client.done;
    const serverStatus = await server.done;
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    console.log(
      `[demo] client exited ${clientStatus.code}, server exited ${serverStatus.code}, ` +
        `files left in ${dir}: ${left.length ? left.join(", ") : "none"}`,
    );
    return clientStatus.code === 0 && serverStatus.code === 0 && left.length === 0 ? 0 : 1;
  } finally {
    server.kill("SIGTERM");
    await server.exited;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main());
