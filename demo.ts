/**
 * The demo: a server and the seed's client talking over FIFOs in a private directory,
 * both outputs shown with a label, then a check that no FIFO is left behind.
 *
 *     deno task demo
 *
 * @module
 */
import { fileURLToPath } from "node:url";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

function label(name: string, stream: ReadableStream<Uint8Array>): Promise<void> {
  return stream.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream(
      {
        buffered: "",
        write(text: string) {
          this.buffered += text;
          const lines = this.buffered.split("\n");
          this.buffered = lines.pop()!;
          for (const line of lines) console.log(`[${name}] ${line}`);
        },
      } as UnderlyingSink<string> & { buffered: string },
    ),
  );
}

function spawn(script: string, flags: string[], args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, here(script), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
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
  const fifoFlags = [`--allow-write=${dir}`, "--allow-run=mkfifo"];
  // Read access to lib/ lets the server run its echo loop on the fast worker engine.
  const server = spawn("server.ts", [`--allow-read=${dir},${here("lib")}`, ...fifoFlags], [
    "--dir",
    dir,
  ]);
  const serverOutput = Promise.all([
    label("server", server.stdout),
    label("server", server.stderr),
  ]);
  try {
    await waitFor(`${dir}/pipe.ctl`, 10_000); // the server's own first line says where
    const client = spawn("client.ts", [`--allow-read=${dir}`, ...fifoFlags], [
      "--dir",
      dir,
      "--interval",
      "300",
    ]);
    await Promise.all([label("client", client.stdout), label("client", client.stderr)]);
    const clientStatus = await client.status;
    const serverStatus = await server.status;
    await serverOutput;
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    console.log(
      `[demo] client exited ${clientStatus.code}, server exited ${serverStatus.code}, ` +
        `files left in ${dir}: ${left.length ? left.join(", ") : "none"}`,
    );
    return clientStatus.code === 0 && serverStatus.code === 0 && left.length === 0 ? 0 : 1;
  } finally {
    try {
      server.kill("SIGTERM");
    } catch { /* already gone */ }
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await main());
