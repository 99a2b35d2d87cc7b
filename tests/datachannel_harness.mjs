// The JavaScript half of tests/test_datachannel_golden.py: runs teller-data.js (the teller
// page's data-channel codec) in node on the cases the test writes to stdin, and prints what
// it made of them as JSON.
//
// stdin:  {"module": "<path of teller-data.js>", "cases": [{"name", "message" | "form": [key, seq],
//          "chunk_id", "golden": ["<text>", ...]}]}
// stdout: {"<name>": {"message", "encoded": [...], "parsed", "inbound"}}
//   message: the message encoded (a form is built by formMessage, as the desk does)
//   encoded: encode(message, chunk_id)
//   parsed:  the golden texts pushed through a Reassembler (the last whole message)
//   inbound: checkInbound accepted `parsed` (only terminal -> teller types are checked)

import { readFileSync } from "node:fs";

const input = JSON.parse(readFileSync(0, "utf-8"));
// A data: URL makes node load the file as an ES module whatever its extension says.
const source = readFileSync(input.module);
const m = await import(`data:text/javascript;base64,${source.toString("base64")}`);

const out = {};
for (const c of input.cases) {
  const message = c.form ? m.formMessage(...c.form) : c.message;
  const reassembler = new m.Reassembler();
  let parsed = null;
  for (const text of c.golden) parsed = reassembler.push(text, 0);
  let inbound = null;
  if (parsed && m.INBOUND.has(parsed.type)) {
    try { m.checkInbound(parsed); inbound = true; } catch (err) { inbound = String(err); }
  }
  out[c.name] = { message, encoded: m.encode(message, c.chunk_id || undefined), parsed, inbound };
}
process.stdout.write(JSON.stringify(out));
