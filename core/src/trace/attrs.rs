//! Attribute names. `gen_ai.*`, `http.*`, `server.*`, `url.*` and `error.type` follow the
//! OpenTelemetry semantic conventions (GenAI conventions, development status, as of late 2026);
//! everything the gateway adds lives under `gateway.*`.

pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
/// Names of the tools the model called (the conventions name one tool per span; a chat can call several).
pub const GEN_AI_TOOL_NAMES: &str = "gateway.gen_ai.tool.names";
pub const GEN_AI_TOOL_CALL_IDS: &str = "gateway.gen_ai.tool.call.ids";

pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
pub const HTTP_REQUEST_RESEND_COUNT: &str = "http.request.resend_count";
pub const URL_PATH: &str = "url.path";
pub const SERVER_ADDRESS: &str = "server.address";
pub const ERROR_TYPE: &str = "error.type";

pub const GATEWAY_REQUEST_ID: &str = "gateway.request_id";
pub const GATEWAY_PRINCIPAL_ID: &str = "gateway.principal.id";
pub const GATEWAY_PRINCIPAL_KIND: &str = "gateway.principal.kind";
pub const GATEWAY_ROUTE: &str = "gateway.route";
pub const GATEWAY_PROVIDER: &str = "gateway.provider";
pub const GATEWAY_TARGETS: &str = "gateway.targets";
pub const GATEWAY_STREAM: &str = "gateway.stream";
pub const GATEWAY_ATTEMPT: &str = "gateway.attempt";
pub const GATEWAY_BACKOFF_MS: &str = "gateway.backoff_ms";
pub const GATEWAY_FALLBACK: &str = "gateway.fallback";
pub const GATEWAY_OUTCOME: &str = "gateway.outcome";
/// The runtime's own words for a network failure (first line, capped): never sent to clients.
pub const GATEWAY_UPSTREAM_ERROR_DETAIL: &str = "gateway.upstream.error_detail";
/// Who a failure is down to: `client`, `upstream` or `gateway`.
pub const GATEWAY_ERROR_BLAME: &str = "gateway.error.blame";
pub const GATEWAY_LATENCY_TOTAL_MS: &str = "gateway.latency.total_ms";
pub const GATEWAY_LATENCY_UPSTREAM_TTFB_MS: &str = "gateway.latency.upstream_ttfb_ms";
pub const GATEWAY_LATENCY_UPSTREAM_MS: &str = "gateway.latency.upstream_ms";
pub const GATEWAY_LATENCY_OVERHEAD_MS: &str = "gateway.latency.overhead_ms";
pub const GATEWAY_COST_USD: &str = "gateway.cost.usd";

pub const GATEWAY_MCP_SERVER: &str = "gateway.mcp.server";
/// OpenTelemetry's MCP conventions.
pub const MCP_METHOD_NAME: &str = "mcp.method.name";
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
pub const GATEWAY_MCP_ARGUMENTS: &str = "gateway.mcp.arguments";
pub const GATEWAY_DECISION: &str = "gateway.decision";
pub const MCP_PROTOCOL_VERSION: &str = "mcp.protocol.version";

// Guardrails and policies (gateway-specific).
pub const GATEWAY_GUARDRAIL_ACTION: &str = "gateway.guardrail.action";
pub const GATEWAY_GUARDRAIL_MODE: &str = "gateway.guardrail.mode";
pub const GATEWAY_GUARDRAIL_SIGNALS: &str = "gateway.guardrail.signals";
pub const GATEWAY_GUARDRAIL_MAX_SCORE: &str = "gateway.guardrail.max_score";
pub const GATEWAY_GUARDRAIL_REMOTE: &str = "gateway.guardrail.remote";
pub const GATEWAY_POLICY_DECISION: &str = "gateway.policy.decision";
pub const GATEWAY_POLICY_DETERMINING: &str = "gateway.policy.determining";
pub const GATEWAY_POLICY_ERRORS: &str = "gateway.policy.errors";
/// On the request that loaded its scope's policies: sets loaded from their compiled form, and
/// sets parsed from their text.
pub const GATEWAY_POLICY_SETS_COMPILED: &str = "gateway.policy.sets_compiled";
pub const GATEWAY_POLICY_SETS_PARSED: &str = "gateway.policy.sets_parsed";

// Payload snapshots (opt-in): GenAI's names for chat, the gateway's for other bodies.
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const GATEWAY_REQUEST_BODY: &str = "gateway.request.body";
pub const GATEWAY_MCP_REQUEST_BODY: &str = "gateway.mcp.request.body";
pub const GATEWAY_MCP_RESPONSE_BODY: &str = "gateway.mcp.response.body";

// Rate limits and the response cache (gateway-specific).
pub const GATEWAY_RATELIMIT_KEY: &str = "gateway.ratelimit.limiter";
pub const GATEWAY_RATELIMIT_OUTCOME: &str = "gateway.ratelimit.outcome";
pub const GATEWAY_RATELIMIT_ERROR: &str = "gateway.ratelimit.error";
pub const GATEWAY_CACHE: &str = "gateway.cache";
