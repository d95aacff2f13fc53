/**
 * Soak: many session clients over three servers (one per framing) for minutes, with
 * driver processes SIGKILLed now and then and replaced by new ones; every echo is checked
 * byte for byte, every server's memory sampled each second.
 *
 *     deno run --allow-read --allow-write=/tmp --allow-run --allow-env bench/soak.ts \
 *       [--minutes 1 | --seconds N] [--clients 64] [--per-driver 8] [--kill-every 5] \
 *       [--max-size 65536] [--seed N]
 *
 * Clients run in `tests/soak_client.ts` processes of at most `--per-driver` sessions
 * (Deno parks one runtime thread per pending FIFO read and stalls near 32). Every
 * `--kill-every` seconds one driver is SIGKILLed and a new one takes its clients.
 *
 * Prints a Markdown summary. Exits 1 if a message was lost or corrupted by a driver that
 * was not killed, a driver failed, or a server did not stop cleanly; files left behind and
 * memory growth are reported as warnings.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Framing } from "../lib/framing/framing.ts";
import { Rng } from "../tests/rng.ts";
import { entries, memoryOf, type Proc, spawnSoakClient, startServer } from "../tests/helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    minutes: { type: "string", default: "1" },
    seconds: { type: "string" },
    clients: { type: "string", default: "64" },
    "per-driver": { type: "string", default: "8" },
    "kill-every": { type: "string", default: "5" },
    "max-size": { type: "string", default: "65536" },
    seed: { type: "string" },
  },
});
const seconds = values.seconds !== undefined ? Number(values.seconds) : Number(values.minutes) * 60;
const totalClients = Number(values.clients);
const perDriver = Math.min(16, Number(values["per-driver"]));
const killEvery = Number(values["kill-every"]);
const seed = Number(values.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]);
for (const [name, value] of Object.entries({ seconds, totalClients, perDriver, killEvery, seed })) {
  if (
    !Number.isFinite(value) || value < 0 || (name !== "killEvery" && value <= 0 && name !== "seed")
  ) {
    console.error(`error: invalid ${name}: ${value}`);
    Deno.exit(2);
  }
}
const rng = new Rng(seed);
const FRAMINGS: Framing[] = ["lines", "length", "raw"];

interface Report {
  sent: number;
  echoed: number;
  bytes: number;
  corrupt: number;
  lost?: number;
  final?: boolean;
  error?: string;
}

interface Driver {
  id: number;
  framing: Framing;
  clients: number;
  proc: Proc;
  killed: boolean;
  exited: boolean;
}

interface ServerState {
  framing: Framing;
  name: string;
  proc: Proc;
  pid: number;
  rss: number[];
  hwm: number;
  stopMs?: number;
  exit?: number;
}

function lastReport(text: string): Report | undefined {
  const line = text.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  return line ? JSON.parse(line) : undefined;
}

const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "fifo-soak-" });
const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const servers: ServerState[] = [];
const drivers: Driver[] = [];
let nextDriver = 0;
let failure = "";

function startDriver(framing: Framing, clients: number, runFor: number): Driver {
  const id = nextDriver++;
  const server = servers.find((s) => s.framing === framing)!;
  const proc = spawnSoakClient(dir, [
    "--name",
    server.name,
    "--framing",
    framing,
    "--clients",
    String(clients),
    "--seconds",
    runFor.toFixed(1),
    "--seed",
    String(rng.u32()),
    "--max-size",
    values["max-size"]!,
    "--timeout",
    "15000",
  ], { deadline: (runFor + 120) * 1000 });
  const driver: Driver = { id, framing, clients, proc, killed: false, exited: false };
  proc.done.finally(() => driver.exited = true).catch(() => {});
  drivers.push(driver);
  return driver;
}

let sampler: ReturnType<typeof setInterval> | undefined;
try {
  for (const framing of FRAMINGS) {
    const name = `soak-${framing}`;
    const proc = await startServer(dir, [
      "--name",
      name,
      "--framing",
      framing,
      "--exit-word",
      "",
    ], { deadline: (seconds + 180) * 1000 });
    servers.push({ framing, name, proc, pid: proc.child.pid, rss: [], hwm: 0 });
  }
  const sample = async () => {
    for (const server of servers) {
      try {
        const memory = await memoryOf(server.pid);
        if (!memory) continue; // stopped
        server.rss.push(memory.rssKiB);
        server.hwm = Math.max(server.hwm, memory.hwmKiB);
      } catch { /* stopped */ }
    }
  };
  await sample();
  sampler = setInterval(sample, 1000);

  // Spread the clients over the framings, then over drivers of at most perDriver each.
  for (const [i, framing] of FRAMINGS.entries()) {
    let share = Math.floor(totalClients / 3) + (i < totalClients % 3 ? 1 : 0);
    while (share > 0) {
      const clients = Math.min(perDriver, share);
      startDriver(framing, clients, seconds);
      share -= clients;
    }
  }

  // Chaos: now and then, SIGKILL a running driver and start a new one in its place.
  while (elapsed() < seconds) {
    const wait = killEvery > 0 ? Math.min(killEvery, seconds - elapsed()) : seconds - elapsed();
    await new Promise((r) => setTimeout(r, Math.max(0, wait) * 1000));
    const left = seconds - elapsed();
    if (killEvery <= 0 || left < 2) continue;
    const candidates = drivers.filter((d) =>
      !d.killed && !d.exited && d.proc.stdout().includes("{")
    );
    if (!candidates.length) continue;
    const victim = candidates[rng.int(0, candidates.length - 1)];
    try {
      victim.proc.child.kill("SIGKILL");
      victim.killed = true;
    } catch {
      continue; // it ended meanwhile
    }
    startDriver(victim.framing, victim.clients, left);
  }

  const results = await Promise.all(drivers.map(async (d) => ({ d, r: await d.proc.done })));
  clearInterval(sampler);
  sampler = undefined;
  await sample();
  for (const server of servers) {
    const t = performance.now();
    server.proc.child.kill("SIGTERM");
    const result = await server.proc.done;
    server.stopMs = performance.now() - t;
    server.exit = result.code;
  }

  // ------------------------------------------------------------------ the summary
  const rows: string[] = [];
  let checked = 0;
  let lost = 0;
  let corrupt = 0;
  let killedEchoed = 0;
  const problems: string[] = [];
  /** Worth reading, not failures: files left behind, memory trends. */
  const warnings: string[] = [];
  for (const server of servers) {
    const mine = results.filter(({ d }) => d.framing === server.framing);
    let sent = 0;
    let echoed = 0;
    let bytes = 0;
    let kills = 0;
    for (const { d, r } of mine) {
      const report = lastReport(r.stdout);
      if (d.killed) {
        kills++;
        killedEchoed += report?.echoed ?? 0;
        checked += report?.echoed ?? 0;
        continue;
      }
      if (r.code !== 0 || !report?.final) {
        problems.push(
          `driver ${d.id} (${d.framing}) exited ${r.code}: ${report?.error ?? r.stderr.trim()}`,
        );
      }
      sent += report?.sent ?? 0;
      echoed += report?.echoed ?? 0;
      bytes += report?.bytes ?? 0;
      lost += report?.lost ?? (report ? report.sent - report.echoed : 0);
      corrupt += report?.corrupt ?? 0;
    }
    checked += echoed;
    const mib = (kib: number) => (kib / 1024).toFixed(1);
    const rss = server.rss;
    const [start, end] = [rss[0] ?? 0, rss.at(-1) ?? 0];
    const peak = Math.max(...rss, 0);
    const at = (f: number) => rss[Math.min(rss.length - 1, Math.floor(f * rss.length))] ?? 0;
    const trend = [0.25, 0.5, 0.75].map((f) => mib(at(f))).join(" → ");
    const stop = `${server.stopMs?.toFixed(0)} ms, exit ${server.exit}`;
    rows.push(
      `| ${server.framing} | ${mine.length - kills} + ${kills} killed | ${sent} | ${echoed} | ` +
        `${sent - echoed} | ${(bytes / 2 ** 20).toFixed(0)} | ${mib(start)} / ${mib(peak)} / ` +
        `${mib(end)} (HWM ${mib(server.hwm)}; at 25/50/75%: ${trend}) | ${stop} |`,
    );
    if (server.exit !== 0) problems.push(`server ${server.name} exited ${server.exit}`);
    // Flat, not growing: the last quarter of the run against the second quarter.
    const q = Math.floor(server.rss.length / 4);
    if (q >= 2) {
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const early = mean(server.rss.slice(q, 2 * q));
      const late = mean(server.rss.slice(-q));
      if (late > early * 1.25 + 16 * 1024) {
        warnings.push(
          `server ${server.name} RSS grew from ${mib(early)} to ${mib(late)} MiB over the run`,
        );
      }
    }
    const logs = server.proc.stderr().trim().split("\n").filter((l) => l);
    const kinds = new Map<string, number>();
    for (const l of logs) {
      const kind = l.replace(/\d+/g, "N").replace(/"[^"]*"/g, '"…"').slice(0, 60);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    if (logs.length) {
      rows.push(
        `|  | server log: ${[...kinds].map(([k, n]) => `${n}× ${k}`).join("; ")} | | | | | | |`,
      );
    }
  }
  if (lost) problems.push(`${lost} message(s) lost by drivers that were not killed`);
  if (corrupt) problems.push(`${corrupt} corrupt echo(es)`);
  const leftovers = entries(dir);
  if (leftovers.length) {
    const tree = leftovers.map((e) => {
      try {
        return `${e}/{${entries(`${dir}/${e}`).join(",")}}`;
      } catch {
        return e;
      }
    });
    warnings.push(
      `left in the directory after every server stopped: ${tree.join(", ")}`,
    );
  }
  failure = problems.join("\n");

  const killed = drivers.filter((d) => d.killed).length;
  console.log(`# Soak: ${seconds} s, ${totalClients} session clients, 3 servers\n`);
  console.log(
    `Seed ${seed}; drivers of at most ${perDriver} sessions; ${killed} driver(s) SIGKILLed ` +
      `(every ${killEvery} s) and replaced; messages up to ${values["max-size"]} bytes.\n`,
  );
  console.log(
    "| framing | drivers | sent | echoed intact | lost | MiB echoed | server RSS MiB " +
      "start / peak / end | SIGTERM stop |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const row of rows) console.log(row);
  console.log(
    `\n**${checked} echoes checked byte for byte** (${killedEchoed} by drivers later ` +
      `killed), **${lost} lost, ${corrupt} corrupt** among drivers that ran to the end.`,
  );
  if (warnings.length) console.log(`\nWarnings:\n\n${warnings.map((w) => `- ${w}`).join("\n")}`);
  console.log(failure ? `\n**FAILED**\n\n${failure}` : "\n**OK**");
} catch (error) {
  failure = (error as Error)?.stack ?? String(error);
  console.error(`error: ${failure}`);
} finally {
  if (sampler !== undefined) clearInterval(sampler);
  for (const d of drivers) await d.proc[Symbol.asyncDispose]();
  for (const s of servers) await s.proc[Symbol.asyncDispose]();
  // Whatever is left (see the warnings) goes with the directory: no FIFO outlives the run.
  Deno.removeSync(dir, { recursive: true });
}
Deno.exit(failure ? 1 : 0);
