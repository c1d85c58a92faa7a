// Serves the built Worker in workerd through Miniflare (faster than `wrangler dev`, same runtime).
// Usage: node miniflare.mjs --worker-dir DIR --config FILE [--compiled FILE] [--port N]
// Seeds the CONFIG KV namespace with the document, binds each secret the document names from the
// environment variable of the same name in upper case (openai_api_key <- OPENAI_API_KEY), prints
// `READY http://127.0.0.1:PORT`, and stops on SIGTERM or SIGINT.
import * as miniflare from "miniflare";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { "worker-dir": { type: "string" }, config: { type: "string" }, compiled: { type: "string" }, port: { type: "string", default: "0" } },
});
const buildDir = path.resolve(values["worker-dir"], "build");
const document = readFileSync(values.config, "utf8");
const config = JSON.parse(document);

const secretNames = new Set();
for (const provider of Object.values(config.providers ?? {})) {
  if (provider.api_key_secret) secretNames.add(provider.api_key_secret);
}
for (const server of Object.values(config.mcp_servers ?? {})) {
  if (server.credential?.secret) secretNames.add(server.credential.secret);
}
for (const secret of Object.values(config.telemetry?.collector_headers ?? {})) secretNames.add(secret);
for (const name of ["gateway_admin_key", "gateway_loopback_only", "mcp_session_key"]) secretNames.add(name);
const bindings = {};
for (const name of secretNames) {
  const value = process.env[name.toUpperCase()];
  if (value) bindings[name] = value;
}

const v4 = {
  host: "127.0.0.1",
  port: Number(values.port),
  cf: false,
  modulesRoot: buildDir,
  modules: [
    { type: "ESModule", path: path.join(buildDir, "index.js") },
    { type: "CompiledWasm", path: path.join(buildDir, "index_bg.wasm") },
  ],
  compatibilityDate: "2026-11-01",
  kvNamespaces: { CONFIG: "gateway-config", CACHE: "gateway-cache" },
  durableObjects: { RATE_LIMITER: "RateLimiter" },
  bindings,
};
const mf = new miniflare.Miniflare(miniflare.convertV4MiniflareOptions ? miniflare.convertV4MiniflareOptions(v4) : v4);
const url = await mf.ready;
const kv = await mf.getKVNamespace("CONFIG");
// The compiled policies first, as a push stores them (see `policy::compile`).
if (values.compiled) {
  const compiled = readFileSync(values.compiled);
  await kv.put("config/compiled", compiled.buffer.slice(compiled.byteOffset, compiled.byteOffset + compiled.byteLength));
}
await kv.put("config", document);
console.log(`READY ${url.origin}`);

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
