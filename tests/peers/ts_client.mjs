// Drives the official TypeScript MCP client (@modelcontextprotocol/sdk 1.32, installed with
// server-everything into .peers/node) for the gateway tests, as mcp_client.py drives the
// Python one. The TypeScript SDK 1.x speaks 2025-11-25 (initialize, then a session).
//
// Usage: MCP_TOKEN=... MCP_SDK=<path of @modelcontextprotocol/sdk> node ts_client.mjs URL STEP...
//   STEP  `list` (tools/list) or `call:NAME:JSON_ARGUMENTS` (tools/call)
// Prints one JSON object to stdout: {"ok": true, "steps": [...]} with every step's result or
// error (a step that throws is reported, not fatal), or {"ok": false, "error": "..."}.
import path from "node:path";
import { pathToFileURL } from "node:url";

const [url, ...steps] = process.argv.slice(2);
const sdk = process.env.MCP_SDK;
const load = (p) => import(pathToFileURL(path.join(sdk, "dist", "esm", p)).href);

async function main() {
  const { Client } = await load("client/index.js");
  const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
  const headers = process.env.MCP_TOKEN ? { Authorization: `Bearer ${process.env.MCP_TOKEN}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: "mcpsoc-ts-test", version: "1.0.0" });
  await client.connect(transport);
  const out = [];
  for (const step of steps) {
    try {
      if (step === "list") {
        const result = await client.listTools();
        out.push({ step: "list", tools: result.tools.map((t) => ({ name: t.name, description: t.description })) });
      } else if (step.startsWith("call:")) {
        const [, name, ...rest] = step.split(":");
        const result = await client.callTool({ name, arguments: JSON.parse(rest.join(":")) });
        const text = (result.content || []).map((c) => c.text || "").join("\n");
        out.push({ step: "call", tool: name, is_error: Boolean(result.isError), text });
      } else {
        throw new Error(`unknown step ${step}`);
      }
    } catch (e) {
      out.push({ step, error: { code: e.code ?? null, message: String(e.message || e) } });
    }
  }
  await client.close();
  return { ok: true, protocol_version: transport.protocolVersion ?? null, steps: out };
}

main()
  .then((r) => console.log(JSON.stringify(r)))
  .catch((e) => console.log(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e) })));
