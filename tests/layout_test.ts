/**
 * The layout of `lib/`: each wing imports only itself and the wings below it, so that the
 * folders show the architecture (FIFOs and framing at the bottom, the plain pair and
 * sessions on them, what only the CLIs use above, `serve_echo.ts` and `mod.ts` on top).
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const LIB = fileURLToPath(new URL("../lib/", import.meta.url));

/** What each wing may import from, besides itself. */
const BELOW: Record<string, string[]> = {
  fifo: [],
  framing: [],
  plain: ["fifo", "framing"],
  session: ["fifo", "framing"],
  cli: ["fifo", "framing", "session"],
  "": ["fifo", "framing", "plain", "session", "cli"],
};

/** Every module under `lib/` (generated bundles aside), by its path relative to `lib/`. */
function modules(dir = ""): string[] {
  return [...Deno.readDirSync(LIB + dir)].flatMap((entry) => {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory) return modules(path);
    return path.endsWith(".ts") && !path.endsWith("_bundle.ts") ? [path] : [];
  });
}

/** The `lib/`-relative paths a module imports (its code, not its doc examples). */
function importsOf(path: string): string[] {
  const text = Deno.readTextFileSync(LIB + path);
  const specifiers = [...text.matchAll(/^(?:import|export)\b[^;]*?from "(\.[^"]+)";/gms)];
  const base = new URL(path, "file:///lib/");
  return specifiers.map(([, spec]) => new URL(spec, base).pathname.replace(/^\/lib\//, ""));
}

const wingOf = (path: string) => path.includes("/") ? path.split("/")[0] : "";

Deno.test("layout: every lib/ module is in a known wing, none imports a wing above its own", () => {
  const all = modules();
  assert.ok(all.length > 20, `only ${all.length} modules found under ${LIB}`);
  const upward = all.flatMap((path) => {
    const wing = wingOf(path);
    assert.ok(wing in BELOW, `"${path}" is in an unknown wing "${wing}"`);
    return importsOf(path)
      .filter((target) => wingOf(target) !== wing && !BELOW[wing].includes(wingOf(target)))
      .map((target) => `${path} -> ${target}`);
  });
  assert.deepEqual(upward, []);
});

Deno.test("layout: the import scan sees imports (and would see an upward one)", () => {
  const imports = importsOf("plain/plain_engine.ts");
  assert.ok(imports.includes("fifo/fifo_file.ts"), imports.join(", "));
  assert.ok(importsOf("mod.ts").some((target) => wingOf(target) === "session"));
});
