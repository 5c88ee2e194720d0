//! The phases every request shares, as [`Handler`] methods: routing a namespaced name
//! to its upstream, judging, forwarding with progress and cancellation carried across,
//! and reporting what happened (including the three kinds of failure).

use std::time::Instant;

use rmcp::model::{
    CallToolResult, CancelledNotificationParam, ClientRequest, ContentBlock, ErrorCode,
    ServerResult,
};
use rmcp::service::{PeerRequestOptions, RequestContext, ServiceError};
use rmcp::{ErrorData as McpError, RoleServer};
use warden_proto::v1::{Action, Decision};

use super::super::config::SEPARATOR;
use super::super::judge::{self, Judgement};
use super::super::outcome::{self, Scan};
use super::super::upstream::Connected;
use super::{Handler, NO_DECISION, REFUSED};

/// A tool result with `isError` and one text.
pub(super) fn text_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

impl Handler {
    /// The upstream and its own name for a namespaced tool or prompt name.
    pub(super) fn route<'a>(&'a self, name: &'a str) -> Option<(&'a Connected, &'a str)> {
        let (server, rest) = name.split_once(SEPARATOR)?;
        let upstream = self.gw.upstreams.iter().find(|u| u.name == server)?;
        (!rest.is_empty()).then_some((upstream, rest))
    }

    pub(super) fn upstream_named(&self, name: &str) -> Option<&Connected> {
        self.gw.upstreams.iter().find(|u| u.name == name)
    }

    /// Sends `request` upstream; the agent's progress token is mapped onto the
    /// upstream's, and the agent cancelling cancels the upstream request.
    pub(super) async fn forward(
        &self,
        upstream: &Connected,
        request: ClientRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ServiceError> {
        let peer = upstream.peer();
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await?;
        let id = handle.id.clone();
        let token = handle.progress_token.clone();
        if let Some(agent_token) = ctx.meta.get_progress_token() {
            self.gw
                .relay
                .track(token.clone(), ctx.peer.clone(), agent_token);
        }
        let result = tokio::select! {
            r = handle.await_response() => r,
            () = ctx.ct.cancelled() => {
                let note = CancelledNotificationParam::new(
                    Some(id),
                    Some("cancelled by the agent".into()),
                );
                let _ = peer.notify_cancelled(note).await;
                Err(ServiceError::Cancelled { reason: Some("cancelled by the agent".into()) })
            }
        };
        self.gw.relay.untrack(&token);
        result
    }

    pub(super) async fn judge(&self, action: &Action) -> Judgement {
        let mut client = self.gw.client.clone();
        judge::judge(
            &mut client,
            &self.gw.identity,
            action,
            self.gw.wait_approval,
        )
        .await
    }

    /// Reports what a forwarded request did; failures to report are logged (the
    /// result has already been produced).
    pub(super) async fn report(
        &self,
        action: Action,
        decision: Option<&Decision>,
        meta: warden_proto::v1::ResultMeta,
    ) {
        let Some(decision) = decision else { return };
        let seq = decision.id.as_ref().map_or(0, |id| id.seq);
        tracing::info!(
            tool = %action.tool,
            decision = seq,
            outcome = %meta.outcome,
            bytes = meta.bytes,
            tags = ?meta.tags,
            "reported"
        );
        let mut client = self.gw.client.clone();
        if let Err(e) = client.report(action, seq, meta).await {
            tracing::warn!(decision = seq, error = %e, "could not report the result to wardend");
        }
    }

    /// Reports an upstream failure and returns its outcome class.
    pub(super) async fn report_failure(
        &self,
        action: Action,
        decision: Option<&Decision>,
        e: &ServiceError,
        started: Instant,
    ) {
        let (class, detail) = match e {
            ServiceError::McpError(err) => (
                outcome::RPC_ERROR,
                format!("JSON-RPC error {}: {}", err.code.0, err.message),
            ),
            ServiceError::Cancelled { .. } => (
                outcome::TRANSPORT_ERROR,
                "cancelled by the agent".to_string(),
            ),
            other => (
                outcome::TRANSPORT_ERROR,
                format!("upstream failed: {other}"),
            ),
        };
        let meta = outcome::meta(&Scan::default(), class, detail, started);
        self.report(action, decision, meta).await;
    }
}

/// An MCP error for an upstream failure: the upstream's own JSON-RPC error as it
/// was, or an internal error naming the upstream.
pub(super) fn upstream_error(upstream: &Connected, e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(err) => err,
        other => McpError::internal_error(
            format!(
                "upstream {} ({}) failed: {other}",
                upstream.name, upstream.target
            ),
            None,
        ),
    }
}

impl Handler {
    /// Judges a non-tool request: forwarded with its decision, or a JSON-RPC error.
    pub(super) async fn judged(&self, action: &Action) -> Result<Option<Decision>, McpError> {
        match self.judge(action).await {
            Judgement::Forward(d) => Ok(d),
            Judgement::Refuse(why) => {
                let code = if why.contains("no policy decision") {
                    NO_DECISION
                } else {
                    REFUSED
                };
                Err(McpError::new(ErrorCode(code), why, None))
            }
        }
    }
}
