import assert from "node:assert/strict";
import { formatSensitivityTable, type SensitivityTables } from "./report.ts";
import { sensitivitySvg } from "./svg.ts";

const tables: SensitivityTables = {
  bits: [8, 2, 4],
  k: { "2": [3e-3, 1e-4], "4": [6e-4, 2e-5], "8": [4e-5, 1e-6] },
  v: { "2": [1e-3, 3e-4], "4": [2e-4, 6e-5], "8": [1e-5, 3e-6] },
  total: { "2": [4e-3, 4e-4], "4": [8e-4, 8e-5], "8": [5e-5, 4e-6] },
};

Deno.test("report: table has one row per layer, s_b columns in bit order, K/V shares of the lowest width", () => {
  const lines = formatSensitivityTable(tables).split("\n");
  assert.match(lines[0], /^layer\s+s_2\s+s_4\s+s_8\s+K share\s+V share$/);
  assert.match(lines[1], /^\s+0\s+4\.000e-3\s+8\.000e-4\s+5\.000e-5\s+75\.0 %\s+25\.0 %$/);
  assert.match(lines[2], /^\s+1\s+4\.000e-4\s+8\.000e-5\s+4\.000e-6\s+25\.0 %\s+75\.0 %$/);
  assert.match(lines[4], /^\s+sum\s+4\.400e-3\s+8\.800e-4\s+5\.400e-5\s+70\.5 %\s+29\.5 %$/);
  assert.match(lines[5], /K\/V share: of s_2/);
});

Deno.test("svg: well-formed chart with title, legend, log axis decades and one bar per (layer, bit-width)", () => {
  const svg = sensitivitySvg(tables, { title: "t <&> x", subtitle: "sub" });
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.ok(svg.includes("t &lt;&amp;&gt; x"));
  assert.ok(svg.includes("log scale"));
  for (const e of [-6, -5, -4, -3, -2]) assert.ok(svg.includes(`>1e${e}</text>`), `tick 1e${e}`);
  assert.ok(!svg.includes(">1e-7</text>") && !svg.includes(">1e-1</text>"));
  for (const b of [2, 4, 8]) assert.ok(svg.includes(`>${b}-bit</text>`));
  assert.equal(svg.match(/<rect [^>]*><title>/g)?.length, 6);
  assert.ok(svg.includes("layer 1, 8-bit: s = 4.000e-6 (K 1.000e-6, V 3.000e-6)"));
  // Properly nested tags (a cheap well-formedness check).
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-z]+)\b[^>]*?(\/?)>/g)) {
    if (m[3] === "/") continue;
    if (m[1] === "/") assert.equal(stack.pop(), m[2]);
    else stack.push(m[2]);
  }
  assert.deepEqual(stack, []);
  // A zero sensitivity draws no bar rather than breaking the log axis.
  const zero = sensitivitySvg({ ...tables, total: { ...tables.total, "8": [0, 4e-6] } });
  assert.equal(zero.match(/<rect [^>]*><title>/g)?.length, 5);
  assert.ok(!zero.includes("NaN") && !zero.includes("Infinity"));
});
