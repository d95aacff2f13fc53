/**
 * The benchmark's figures: medians, ratios, targets, and the Markdown table and JSON.
 *
 * @module
 */
import {
  CARD,
  type CellResult,
  type Env,
  type ImplId,
  ROOT,
  sessionLayout,
  type Sizes,
  type Workload,
} from "./cells.ts";
import { readProc, run } from "./procs.ts";

/** What a target is read from: a row's median ratio, median value, or median peak RSS. */
interface TargetSpec {
  name: string;
  id: string;
  impl: ImplId;
  on: "ratio" | "median" | "clientPeakMiB";
  min?: number;
  max?: number;
  unit?: string;
}

/** Issue 9's targets. */
const TARGETS: TargetSpec[] = [
  { name: "A ping-pong, plain pair / C", id: "A", impl: "ours", on: "ratio", min: 0.9 },
  { name: "A through a session / C", id: "A", impl: "session", on: "ratio", min: 0.7 },
  { name: "B pipelined / C", id: "B", impl: "ours", on: "ratio", min: 2.0 },
  { name: "C bulk raw / C", id: "C-raw", impl: "ours", on: "ratio", min: 0.9 },
  { name: "C bulk length / C", id: "C-length", impl: "ours", on: "ratio", min: 0.9 },
  // In one process, as the library now allows; D-256-in-16 is shown beside it.
  { name: "D 256 session clients / 1", id: "D-256", impl: "sessions", on: "ratio", min: 1.5 },
  {
    name: "E --stdin, session",
    id: "E-session",
    impl: "filter",
    on: "median",
    min: 2e6,
    unit: "lines/s",
  },
  {
    name: "E --stdin --shared",
    id: "E-shared",
    impl: "filter",
    on: "median",
    min: 2e6,
    unit: "lines/s",
  },
  {
    name: "E client peak RSS, session",
    id: "E-session",
    impl: "filter",
    on: "clientPeakMiB",
    max: 64,
    unit: "MiB",
  },
  {
    name: "E client peak RSS, --shared",
    id: "E-shared",
    impl: "filter",
    on: "clientPeakMiB",
    max: 64,
    unit: "MiB",
  },
  {
    name: "F no client: wake-ups of the whole server",
    id: "F-none",
    impl: "idle",
    on: "median",
    max: 2,
    unit: "/s",
  },
  {
    name: "F idle sessions: server CPU",
    id: "F-idle",
    impl: "idle",
    on: "median",
    max: 1,
    unit: "% of a core",
  },
];
const IDLE_MiB = 45;
const LOAD_MiB = 72;

/** A row's label in the table. */
export function label(impl: ImplId, env: Env, w: Workload): string {
  switch (impl) {
    case "c":
      if (w.group === "E") return "`cat` through the C echo pair";
      return env.cEcho ? "C echo pair (kernel limit)" : "cat echo + our lib client (no cc)";
    case "py":
      return "seed approach (Python)";
    case "deno":
      return `Deno's floor: blocking echo, no framing (${env.cEcho ? "C" : "lib"} client)`;
    case "oursC":
      return "ours: server.ts + the C client";
    case "ours":
      return "ours: server.ts + blocking lib client";
    case "conn":
      return "ours: FifoConn client, plain pair";
    case "session":
      return "ours: FifoConn client, session (default)";
    case "filter":
      return `ours: client.ts --stdin${w.id === "E-shared" ? " --shared" : ""}`;
    case "idle":
      return w.id === "F-none"
        ? "ours: server.ts, nobody connected"
        : "ours: server.ts, sessions silent";
    case "idlePlain":
      return "ours: server.ts --no-sessions (the plain pair's share)";
    case "sessions": {
      const { clients, processes } = sessionLayout(w.id);
      return `ours: ${clients} session client${clients === 1 ? "" : "s"} (${processes} process${
        processes === 1 ? "" : "es"
      })`;
    }
  }
}

export function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface Row {
  workload: Workload;
  impl: ImplId;
  label: string;
  cells: CellResult[];
}

export interface Target {
  name: string;
  target: string;
  value: number | undefined;
  pass: boolean | undefined;
}

function values(row: Row): number[] {
  return row.cells.flatMap((c) => c.value === undefined ? [] : [c.value]);
}

/** The median of per-repetition ratios of `row` to `base`. */
function ratioOf(row: Row, base: Row | undefined): { ratio?: number; ratios: number[] } {
  if (!base) return { ratios: [] };
  const ratios: number[] = [];
  row.cells.forEach((cell, i) => {
    const b = base.cells[i]?.value;
    if (cell.value !== undefined && b) ratios.push(cell.value / b);
  });
  return { ratio: median(ratios), ratios };
}

const mib = (kib: number | undefined) => kib === undefined ? undefined : kib / 1024;

function formatNumber(value: number | undefined, group: string): string {
  if (value === undefined) return "failed";
  if (group === "C") return value.toLocaleString("en-US", { maximumFractionDigits: 0 });
  if (group === "F") return value.toLocaleString("en-US", { maximumFractionDigits: 2 });
  return Math.round(value).toLocaleString("en-US");
}

function mark(pass: boolean | undefined): string {
  return pass === undefined ? "n/a" : pass ? "✅ pass" : "❌ fail";
}

export async function machineInfo() {
  const [cpuinfo, version] = await readProc(["/proc/cpuinfo", "/proc/version"]) ?? ["", ""];
  const release = version?.split(" ")[2];
  let kernel = release ? `Linux ${release}` : "";
  if (!kernel) {
    try {
      kernel = `Linux ${Deno.osRelease()}`;
    } catch {
      kernel = "unknown";
    }
  }
  return {
    cpu: cpuinfo?.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown",
    cores: navigator.hardwareConcurrency,
    kernel,
    deno: Deno.version.deno,
  };
}

/**
 * The code measured: the commit, and whether server.ts, client.ts, lib/ or bench/ differ
 * from it (FIFO_BENCH_REVISION names it where this is not a git checkout).
 */
export async function revision(): Promise<string> {
  try {
    const commit = (await run("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], 10)).trim();
    const dirty = (await run("git", [
      "-C",
      ROOT,
      "status",
      "--porcelain",
      "--",
      "server.ts",
      "client.ts",
      "lib",
      "bench",
    ], 10)).trim();
    return dirty ? `${commit} + uncommitted changes` : commit;
  } catch {
    return Deno.env.get("FIFO_BENCH_REVISION") ?? "unknown (not a git checkout)";
  }
}

/** How the run went, for the report's header and JSON. */
export interface RunInfo {
  reps: number;
  quick: boolean;
  only: string[];
  pinned: boolean;
  sizes: Sizes;
  notes: string[];
  elapsedSeconds: number;
  python?: string;
  cc?: string;
}

const kibs = (cells: CellResult[], key: "peakKiB" | "idleKiB" | "clientPeakKiB") =>
  cells.flatMap((c) => c[key] === undefined ? [] : [c[key]!]);

/** Figures and targets of a run: the Markdown table and the JSON record. */
export async function report(
  rows: Row[],
  info: RunInfo,
): Promise<{ markdown: string; json: unknown }> {
  const find = (id: string, impl?: ImplId) =>
    rows.find((r) => r.workload.id === id && (impl === undefined || r.impl === impl));
  const summary = rows.map((row) => {
    const w = row.workload;
    const base = w.baseline === undefined
      ? undefined
      : w.group === "D"
      ? find(w.baseline)
      : find(w.id, w.baseline as ImplId);
    const { ratio, ratios } = base === row ? { ratio: 1, ratios: [] } : ratioOf(row, base);
    return {
      row,
      median: median(values(row)),
      ratio: base ? ratio : undefined,
      ratios,
      peakMiB: mib(median(kibs(row.cells, "peakKiB"))),
      clientPeakMiB: mib(median(kibs(row.cells, "clientPeakKiB"))),
      ok: values(row).length,
      errors: row.cells.flatMap((c, i) => c.error ? [`rep ${i + 1}: ${c.error}`] : []),
    };
  });
  type Summary = (typeof summary)[number];

  const targets: (Target & { id?: string; impl?: ImplId })[] = [];
  for (const spec of TARGETS) {
    const s = summary.find((s) => s.row.workload.id === spec.id && s.row.impl === spec.impl);
    if (!s) continue;
    const value = s[spec.on];
    const bound = spec.min ?? spec.max!;
    const pass = value === undefined
      ? false
      : spec.min !== undefined
      ? value >= bound
      : value <= bound;
    const shown = bound >= 1e5 ? bound.toLocaleString("en-US") : String(bound);
    targets.push({
      name: spec.name,
      target: `${spec.min !== undefined ? "≥" : "≤"} ${shown}${spec.unit ? ` ${spec.unit}` : ""}`,
      value,
      pass,
      id: spec.id,
      impl: spec.impl,
    });
  }
  // Our server's RSS: parked before any client (every start), and its peak under A–E.
  const ours = rows.filter((r) => !["c", "py"].includes(r.impl));
  const idleMiB = mib(median(ours.flatMap((r) => kibs(r.cells, "idleKiB"))));
  if (idleMiB !== undefined) {
    targets.push({
      name: "server RSS idle (MiB)",
      target: `≤ ${IDLE_MiB}`,
      value: idleMiB,
      pass: idleMiB <= IDLE_MiB,
    });
  }
  const loaded = summary.filter((s) =>
    "ABCDE".includes(s.row.workload.group) && !["c", "py"].includes(s.row.impl) &&
    s.peakMiB !== undefined
  );
  const worst = loaded.length ? Math.max(...loaded.map((s) => s.peakMiB!)) : undefined;
  if (worst !== undefined) {
    targets.push({
      name: "server peak RSS under A–E (MiB, worst row)",
      target: `≤ ${LOAD_MiB}`,
      value: worst,
      pass: worst <= LOAD_MiB,
    });
  }
  const targetOf = (s: Summary) =>
    targets.filter((t) => t.id === s.row.workload.id && t.impl === s.row.impl)
      .map((t) => `${t.target} ${mark(t.pass)}`).join("; ");

  const code = await revision();
  const machine = { ...await machineInfo(), python: info.python, cc: info.cc };
  const date = new Date().toISOString();
  const lines: string[] = [];
  lines.push(
    `FIFO echo benchmark, ${date}: ${machine.cpu}, ${machine.cores} cores, ${machine.kernel}, ` +
      `Deno ${machine.deno}${machine.python ? `, Python ${machine.python}` : ""}; code ${code}. ` +
      `Our server: \`server.ts --quiet\` with \`${
        CARD.join(" ")
      }\`, default engine, cwd a temp dir. ` +
      `Median of ${info.reps} interleaved repetition${info.reps === 1 ? "" : "s"}${
        info.quick ? " (--quick: small counts)" : ""
      }; ratios are medians of per-repetition ratios to the first row of each workload ` +
      `(for D, to 1 client), their range in parentheses. E times the whole client process ` +
      `(start-up included); F counts context switches of all the server's threads.`,
  );
  lines.push("");
  lines.push(
    "| Workload | Implementation | Median | Ratio | Target | Server peak RSS | Client peak RSS | OK |",
    "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
  );
  let previous = "";
  for (const s of summary) {
    const w = s.row.workload;
    const head = w.id === previous ? "" : `${w.title} (${w.unit})`;
    previous = w.id;
    const spread = s.ratios.length > 1 && Math.max(...s.ratios) !== Math.min(...s.ratios)
      ? ` (${Math.min(...s.ratios).toFixed(2)}–${Math.max(...s.ratios).toFixed(2)})`
      : "";
    const ratio = s.ratio === undefined
      ? (s.median === undefined ? "failed" : "—")
      : s.ratio.toFixed(2) + spread;
    const rss = (v: number | undefined) => v === undefined ? "—" : `${v.toFixed(1)} MiB`;
    lines.push(
      `| ${head} | ${s.row.label} | ${formatNumber(s.median, w.group)} | ${ratio} | ` +
        `${targetOf(s)} | ${rss(s.peakMiB)} | ${rss(s.clientPeakMiB)} | ${s.ok}/${info.reps} |`,
    );
  }
  lines.push("");
  const passed = targets.filter((t) => t.pass).length;
  lines.push(
    `Targets: ${passed}/${targets.length} pass. Took ${info.elapsedSeconds.toFixed(0)} s.`,
  );
  for (const t of targets.filter((t) => t.id === undefined)) {
    lines.push(`- ${t.name}: ${t.value?.toFixed(1) ?? "—"} (${t.target} ${mark(t.pass)})`);
  }
  for (const s of summary.filter((s) => s.row.workload.group === "F")) {
    const of = (key: "cpuPercent" | "wakeups") =>
      median(s.row.cells.flatMap((c) => c[key] === undefined ? [] : [c[key]!]))?.toFixed(2) ?? "—";
    lines.push(
      `- ${s.row.workload.title}, ${s.row.label}: ${of("cpuPercent")}% of a core, ${
        of("wakeups")
      } wake-ups/s.`,
    );
  }
  for (const s of summary.filter((s) => s.errors.length)) {
    lines.push(`- ${s.row.workload.id} ${s.row.label}: ${s.errors.join("; ")}`);
  }
  for (const note of info.notes) lines.push(`- ${note}`);
  const markdown = lines.join("\n") + "\n";

  const json = {
    date,
    code,
    machine,
    options: {
      reps: info.reps,
      quick: info.quick,
      only: info.only,
      pinned: info.pinned,
      sizes: info.sizes,
    },
    serverFlags: CARD,
    method: "median of interleaved repetitions; ratio = median of per-repetition ratios " +
      "to the baseline of the same repetition; RSS from /proc/PID/status; CPU and wake-ups " +
      "from /proc/PID/stat and /proc/PID/task/*/status",
    workloads: [...new Set(rows.map((r) => r.workload))].map((w) => ({
      id: w.id,
      title: w.title,
      unit: w.unit,
      baseline: w.baseline,
      rows: summary.filter((s) => s.row.workload === w).map((s) => ({
        impl: s.row.impl,
        label: s.row.label,
        median: s.median,
        ratio: s.ratio,
        values: s.row.cells.map((c) => c.value ?? null),
        ratios: s.ratios,
        peakRssMiB: s.row.cells.map((c) => mib(c.peakKiB) ?? null),
        idleRssMiB: s.row.cells.map((c) => mib(c.idleKiB) ?? null),
        clientPeakRssMiB: s.row.cells.map((c) => mib(c.clientPeakKiB) ?? null),
        cpuPercent: s.row.cells.map((c) => c.cpuPercent ?? null),
        wakeups: s.row.cells.map((c) => c.wakeups ?? null),
        errors: s.errors,
      })),
    })),
    idleRssMiB: idleMiB,
    targets,
    notes: info.notes,
    elapsedSeconds: info.elapsedSeconds,
  };
  return { markdown, json };
}
