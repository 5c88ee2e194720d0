//! Connections to the upstream MCP servers: a spawned program over its stdio, or
//! streamable HTTP. Each is one rmcp client session shared by every agent session;
//! what an upstream sends on its own (progress, list changes) is passed
//! on to the agents through [`Relay`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rmcp::model::{ClientConfig, ProgressNotificationParam, ProgressToken};
use rmcp::service::{NotificationContext, Peer, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, RoleServer, ServiceExt};

use super::config::{Transport, Upstream};

/// Where notifications from upstreams go: the agent sessions connected now, and for
/// each request in flight the agent's progress token behind the upstream's.
#[derive(Default)]
pub(crate) struct Relay {
    agents: Mutex<Vec<Peer<RoleServer>>>,
    /// Upstream progress token → (agent peer, the agent's progress token).
    progress: Mutex<HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>>,
}

impl Relay {
    /// Remembers a connected agent session (closed ones are dropped as they are seen).
    pub(crate) fn add_agent(&self, peer: Peer<RoleServer>) {
        if let Ok(mut agents) = self.agents.lock() {
            agents.retain(|p| !p.is_transport_closed());
            agents.push(peer);
        }
    }

    /// Routes progress for `upstream` to the agent that asked with `agent`.
    pub(crate) fn track(
        &self,
        upstream: ProgressToken,
        peer: Peer<RoleServer>,
        agent: ProgressToken,
    ) {
        if let Ok(mut map) = self.progress.lock() {
            map.insert(upstream, (peer, agent));
        }
    }

    /// Stops routing progress for `upstream` (the request ended).
    pub(crate) fn untrack(&self, upstream: &ProgressToken) {
        if let Ok(mut map) = self.progress.lock() {
            map.remove(upstream);
        }
    }

    fn agents(&self) -> Vec<Peer<RoleServer>> {
        self.agents
            .lock()
            .map(|a| {
                a.iter()
                    .filter(|p| !p.is_transport_closed())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The client side of one upstream: forwards its notifications to the agents.
#[derive(Clone)]
pub(crate) struct Forwarder {
    name: String,
    relay: Arc<Relay>,
}

impl ClientHandler for Forwarder {
    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let route = self
            .relay
            .progress
            .lock()
            .ok()
            .and_then(|m| m.get(&params.progress_token).cloned());
        if let Some((peer, token)) = route {
            params.progress_token = token;
            if let Err(e) = peer.notify_progress(params).await {
                tracing::debug!(upstream = %self.name, error = %e, "progress not passed on");
            }
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        for peer in self.relay.agents() {
            let _ = peer.notify_tool_list_changed().await;
        }
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        for peer in self.relay.agents() {
            let _ = peer.notify_prompt_list_changed().await;
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        for peer in self.relay.agents() {
            let _ = peer.notify_resource_list_changed().await;
        }
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

/// A connected upstream.
pub(crate) struct Connected {
    pub(crate) name: String,
    /// What it was reached through, for messages: the program or the URL.
    pub(crate) target: String,
    pub(crate) service: RunningService<RoleClient, Forwarder>,
}

impl Connected {
    pub(crate) fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }
}

/// Connects (spawns, or opens the HTTP session) and completes the MCP handshake.
pub(crate) async fn connect(upstream: &Upstream, relay: Arc<Relay>) -> anyhow::Result<Connected> {
    let handler = Forwarder {
        name: upstream.name.clone(),
        relay,
    };
    let (target, service) = match &upstream.transport {
        Transport::Stdio {
            program,
            args,
            env,
            cwd,
        } => {
            let mut command = tokio::process::Command::new(program);
            command.args(args).envs(env);
            if let Some(dir) = cwd {
                command.current_dir(dir);
            }
            // The upstream's stderr stays ours: its diagnostics land in our log.
            let (transport, _stderr) = TokioChildProcess::builder(command)
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .with_context(|| format!("upstream {}: cannot start {program}", upstream.name))?;
            let service = handler.serve(transport).await.with_context(|| {
                format!(
                    "upstream {}: MCP handshake with {program} failed",
                    upstream.name
                )
            })?;
            (program.clone(), service)
        }
        Transport::Http { url } => {
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            let service = handler.serve(transport).await.with_context(|| {
                format!(
                    "upstream {}: MCP handshake with {url} failed",
                    upstream.name
                )
            })?;
            (url.clone(), service)
        }
    };
    Ok(Connected {
        name: upstream.name.clone(),
        target,
        service,
    })
}
