// The official TypeScript SDK client (@modelcontextprotocol/sdk), driven by the e2e suite.
// usage: node ts_client.mjs <url> <gateway key> <tool> <json arguments>
// Prints one JSON line: the session, protocol version, tool names, the call's text and progress.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, key, tool, args] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { authorization: `Bearer ${key}` } },
});
const client = new Client({ name: 'e2e-ts-client', version: '1.0.0' });
await client.connect(transport);
const tools = (await client.listTools()).tools.map((t) => t.name).sort();
const progress = [];
const result = await client.callTool({ name: tool, arguments: JSON.parse(args) }, undefined, {
  onprogress: (p) => progress.push(p.progress),
});
const prompts = client.getServerCapabilities()?.prompts ? (await client.listPrompts()).prompts.map((p) => p.name) : [];
console.log(JSON.stringify({
  session: transport.sessionId ?? null,
  protocol: transport.protocolVersion ?? null,
  tools,
  text: result.content?.map((c) => c.text ?? '').join(''),
  isError: result.isError ?? false,
  progress,
  prompts,
}));
await transport.terminateSession().catch(() => {});
await client.close();
