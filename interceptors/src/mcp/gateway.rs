//! The MCP server the agent talks to. Each request goes through named phases:
//! route (which upstream, which name there), judge (ask wardend), forward (with the
//! agent's progress token and cancellation carried across), inspect (scan, redact),
//! report (bytes, tags, outcome class).
//!
//! Listing tools and prompts merges every upstream's, namespaced `NAME__tool`; tools
//! the policy can never allow are left out. Refused calls never reach the upstream:
//! a refused `tools/call` is a tool result with `isError` and the reason, a refused
//! `resources/read` or `prompts/get` is a JSON-RPC error with code [`REFUSED`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, ErrorCode,
    GetPromptRequest, GetPromptRequestParams, GetPromptResponse, Implementation,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse, ResultType,
    ServerCapabilities, ServerConfig, ServerResult,
};
use rmcp::service::{RequestContext, ServiceError};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

mod phases;

use super::config::SEPARATOR;
use super::judge::{self, Judgement};
use super::outcome::{self, Redactor};
use super::upstream::{Connected, Relay};
use crate::client::{DaemonClient, IdentityArgs};
use phases::{text_error, upstream_error};

/// JSON-RPC error code of a refused `resources/read` or `prompts/get` (in the range
/// JSON-RPC leaves to servers).
pub(crate) const REFUSED: i32 = -32001;
/// JSON-RPC error code when no policy decision could be had (fail-closed).
pub(crate) const NO_DECISION: i32 = -32002;

/// What every agent session shares.
pub(crate) struct Gateway {
    pub(crate) identity: IdentityArgs,
    pub(crate) client: DaemonClient,
    pub(crate) upstreams: Vec<Connected>,
    pub(crate) relay: Arc<Relay>,
    pub(crate) wait_approval: Option<Duration>,
    pub(crate) redact_detected: bool,
    /// Resource URI → upstream name, from the last listings.
    pub(crate) resources: Mutex<HashMap<String, String>>,
}

/// One agent session's handler (cheap to clone; all state is in [`Gateway`]).
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) gw: Arc<Gateway>,
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_prompts()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("warden-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions("Tools are namespaced by upstream server: SERVER__TOOL. Every call is checked by Warden policy.")
    }

    /// Handshake-era versions only (up to 2025-11-25): the gateway keeps one MCP
    /// session per agent connection (progress and list changes are routed through it),
    /// which the session-less 2026-07-28 revision does not have.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        self.gw.relay.add_agent(context.peer.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = Vec::new();
        for u in &self.gw.upstreams {
            match u.peer().list_all_tools().await {
                Ok(list) => {
                    for mut t in list {
                        t.name = format!("{}{SEPARATOR}{}", u.name, t.name).into();
                        tools.push(t);
                    }
                }
                Err(e) => tracing::warn!(upstream = %u.name, error = %e, "cannot list tools"),
            }
        }
        let names = tools.iter().map(|t| t.name.to_string()).collect();
        let mut client = self.gw.client.clone();
        match client.never_allowed(&self.gw.identity, "mcp", names).await {
            Ok(hidden) => {
                if !hidden.is_empty() {
                    tracing::info!(?hidden, "tools the policy never allows are hidden");
                }
                tools.retain(|t| !hidden.iter().any(|h| h.as_str() == t.name.as_ref()));
            }
            Err(e) if self.gw.identity.fail_open && e.is_unavailable() => {
                tracing::warn!(error = %e, "listing every tool WITHOUT a policy decision (--fail-open)");
            }
            Err(e) => {
                return Err(McpError::new(
                    ErrorCode(NO_DECISION),
                    format!("warden: cannot list tools: no policy decision: {e} (fail-closed)"),
                    None,
                ));
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();
        // Route.
        let Some((upstream, name)) = self.route(&request.name) else {
            return Ok(text_error(format!(
                "warden: unknown tool {:?} (tools are named SERVER{SEPARATOR}TOOL)",
                request.name
            ))
            .into());
        };
        // Judge.
        let action = judge::Request {
            identity: &self.gw.identity,
            server: &upstream.name,
            method: "tools/call",
            name: &request.name,
            upstream_name: name,
            uri: None,
            arguments: request.arguments.as_ref(),
        }
        .action();
        let decision = match self.judge(&action).await {
            Judgement::Refuse(why) => return Ok(text_error(why).into()),
            Judgement::Forward(d) => d,
        };
        let redactor = match Redactor::new(decision.as_ref(), self.gw.redact_detected) {
            Ok(r) => r,
            Err(why) => return Ok(text_error(format!("warden: refused: {why}")).into()),
        };
        // Forward.
        let mut params = request.clone();
        params.name = name.to_string().into();
        let sent = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let result = match self.forward(upstream, sent, &context).await {
            Ok(ServerResult::CallToolResult(r)) => r,
            Ok(other) => {
                let e = ServiceError::McpError(McpError::internal_error(
                    format!(
                        "upstream {} answered tools/call with {other:?}",
                        upstream.name
                    ),
                    None,
                ));
                self.report_failure(action, decision.as_ref(), &e, started)
                    .await;
                return Err(upstream_error(upstream, e));
            }
            Err(e) => {
                self.report_failure(action, decision.as_ref(), &e, started)
                    .await;
                return match e {
                    ServiceError::McpError(err) => Err(err),
                    other => Ok(text_error(format!(
                        "warden: upstream {} ({}) failed: {other}",
                        upstream.name, upstream.target
                    ))
                    .into()),
                };
            }
        };
        // Inspect and report.
        let is_error = result.is_error == Some(true);
        let (result, scan) = match outcome::inspect(result, &redactor) {
            Ok(pair) => pair,
            Err(why) => return Ok(text_error(format!("warden: result withheld: {why}")).into()),
        };
        let (class, error) = if is_error {
            let first = result
                .content
                .iter()
                .find_map(|c| c.as_text().map(|t| t.text.clone()))
                .unwrap_or_default();
            (outcome::TOOL_ERROR, format!("tool error: {first}"))
        } else {
            (outcome::OK, String::new())
        };
        let meta = outcome::meta(&scan, class, error, started);
        self.report(action, decision.as_ref(), meta).await;
        let mut result = result;
        result.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut all = Vec::new();
        for u in &self.gw.upstreams {
            match u.peer().list_all_resources().await {
                Ok(list) => {
                    if let Ok(mut map) = self.gw.resources.lock() {
                        for r in &list {
                            map.insert(r.uri.clone(), u.name.clone());
                        }
                    }
                    all.extend(list);
                }
                Err(e) => tracing::debug!(upstream = %u.name, error = %e, "no resources"),
            }
        }
        Ok(ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let mut all = Vec::new();
        for u in &self.gw.upstreams {
            if let Ok(list) = u.peer().list_all_resource_templates().await {
                all.extend(list);
            }
        }
        Ok(ListResourceTemplatesResult::with_all_items(all))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let started = Instant::now();
        // Route: the upstream that listed the URI; with one upstream, that one.
        let listed = self
            .gw
            .resources
            .lock()
            .ok()
            .and_then(|m| m.get(&request.uri).cloned());
        let upstream = match listed {
            Some(name) => self.upstream_named(&name),
            None if self.gw.upstreams.len() == 1 => self.gw.upstreams.first(),
            None => None,
        };
        let Some(upstream) = upstream else {
            return Err(McpError::resource_not_found(
                format!(
                    "warden: no upstream listed resource {:?} (list resources first)",
                    request.uri
                ),
                None,
            ));
        };
        let action = judge::Request {
            identity: &self.gw.identity,
            server: &upstream.name,
            method: "resources/read",
            name: "",
            upstream_name: "",
            uri: Some(&request.uri),
            arguments: None,
        }
        .action();
        let decision = self.judged(&action).await?;
        let redactor =
            Redactor::new(decision.as_ref(), self.gw.redact_detected).map_err(|why| {
                McpError::new(ErrorCode(REFUSED), format!("warden: refused: {why}"), None)
            })?;
        let sent = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request.clone()));
        let result = match self.forward(upstream, sent, &context).await {
            Ok(ServerResult::ReadResourceResult(r)) => r,
            Ok(_) => {
                return Err(McpError::internal_error(
                    "unexpected answer to resources/read",
                    None,
                ));
            }
            Err(e) => {
                self.report_failure(action, decision.as_ref(), &e, started)
                    .await;
                return Err(upstream_error(upstream, e));
            }
        };
        let (result, scan) = outcome::inspect(result, &redactor).map_err(|why| {
            McpError::internal_error(format!("warden: result withheld: {why}"), None)
        })?;
        self.report(
            action,
            decision.as_ref(),
            outcome::meta(&scan, outcome::OK, String::new(), started),
        )
        .await;
        Ok(result.into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let mut all = Vec::new();
        for u in &self.gw.upstreams {
            if let Ok(list) = u.peer().list_all_prompts().await {
                for mut p in list {
                    p.name = format!("{}{SEPARATOR}{}", u.name, p.name);
                    all.push(p);
                }
            }
        }
        Ok(ListPromptsResult::with_all_items(all))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let started = Instant::now();
        let Some((upstream, name)) = self.route(&request.name) else {
            return Err(McpError::invalid_params(
                format!(
                    "warden: unknown prompt {:?} (prompts are named SERVER{SEPARATOR}PROMPT)",
                    request.name
                ),
                None,
            ));
        };
        let arguments: Option<serde_json::Map<String, serde_json::Value>> =
            request.arguments.as_ref().map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                    .collect()
            });
        let action = judge::Request {
            identity: &self.gw.identity,
            server: &upstream.name,
            method: "prompts/get",
            name: &request.name,
            upstream_name: name,
            uri: None,
            arguments: arguments.as_ref(),
        }
        .action();
        let decision = self.judged(&action).await?;
        let redactor =
            Redactor::new(decision.as_ref(), self.gw.redact_detected).map_err(|why| {
                McpError::new(ErrorCode(REFUSED), format!("warden: refused: {why}"), None)
            })?;
        let mut params = request.clone();
        params.name = name.to_string();
        let sent = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        let result = match self.forward(upstream, sent, &context).await {
            Ok(ServerResult::GetPromptResult(r)) => r,
            Ok(_) => {
                return Err(McpError::internal_error(
                    "unexpected answer to prompts/get",
                    None,
                ));
            }
            Err(e) => {
                self.report_failure(action, decision.as_ref(), &e, started)
                    .await;
                return Err(upstream_error(upstream, e));
            }
        };
        let (result, scan) = outcome::inspect(result, &redactor).map_err(|why| {
            McpError::internal_error(format!("warden: result withheld: {why}"), None)
        })?;
        self.report(
            action,
            decision.as_ref(),
            outcome::meta(&scan, outcome::OK, String::new(), started),
        )
        .await;
        Ok(result.into())
    }
}
