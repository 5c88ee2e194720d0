//! `warden.v1.Sessions`: open, close and inspect sessions. Opening and closing are
//! audited like decisions.

use tonic::{Request, Response, Status};
use warden_proto::v1::{
    CloseSessionRequest, GetSessionRequest, OpenSessionRequest, SessionInfo, SessionRef,
    sessions_server::Sessions,
};

use super::{Shared, now_us};
use crate::audit::{KIND_SESSION_CLOSE, KIND_SESSION_OPEN, RecordBody};
use crate::error::ApiError;
use crate::normalize::identity;
use crate::session::SessionState;
use crate::store::SessionKey;

pub(crate) struct SessionsService {
    shared: Shared,
}

impl SessionsService {
    pub(crate) fn new(shared: Shared) -> Self {
        SessionsService { shared }
    }

    async fn open(&self, req: OpenSessionRequest) -> Result<SessionInfo, ApiError> {
        let r = req.session;
        if !req.max_cost_usd.is_finite() || req.max_cost_usd < 0.0 || req.max_cost_usd > 1e9 {
            return Err(ApiError::BadRequest(format!(
                "max_cost_usd: {} is not a usable cap (0 for none, at most 1e9)",
                req.max_cost_usd
            )));
        }
        let max_tokens = (req.max_tokens > 0).then_some(req.max_tokens);
        let max_cost = (req.max_cost_usd > 0.0).then(|| (req.max_cost_usd * 1e6).round() as i64);
        let mut key = key(r.as_ref())?;
        if r.as_ref().is_none_or(|r| r.session.trim().is_empty()) {
            key.session = crate::ids::new_id("s");
        }
        let policy = self.shared.policy.current();
        let now = now_us();
        let opened = (policy.clone(), key.session.clone());
        let (state, created) = self
            .shared
            .store
            .session_step(&key, move |stored| match stored {
                None => {
                    let s = SessionState {
                        max_tokens,
                        max_cost_micro_usd: max_cost,
                        ..SessionState::new(now)
                    };
                    Ok((s.clone(), (s, true)))
                }
                Some(s) => match s.ended(&opened.0, now) {
                    Some(why) => Err(ApiError::SessionEnded(format!(
                        "session {:?} cannot be reopened: {why}",
                        opened.1
                    ))),
                    None => Ok((s.clone(), (s, false))),
                },
            })
            .await?;
        if created {
            self.audit(&key, KIND_SESSION_OPEN, &state, now).await?;
        }
        Ok(info(&key, &state, &policy, now))
    }

    async fn close(&self, r: Option<SessionRef>) -> Result<SessionInfo, ApiError> {
        let key = key(r.as_ref())?;
        let policy = self.shared.policy.current();
        let now = now_us();
        let missing = format!("no session {:?} for agent {:?}", key.session, key.agent);
        let (state, changed) = self
            .shared
            .store
            .session_step(&key, move |stored| match stored {
                None => Err(ApiError::NotFound(missing)),
                Some(mut s) => {
                    let changed = s.closed_us.is_none();
                    s.closed_us.get_or_insert(now);
                    Ok((s.clone(), (s, changed)))
                }
            })
            .await?;
        if changed {
            self.audit(&key, KIND_SESSION_CLOSE, &state, now).await?;
        }
        Ok(info(&key, &state, &policy, now))
    }

    async fn get(&self, r: Option<SessionRef>) -> Result<SessionInfo, ApiError> {
        let key = key(r.as_ref())?;
        let state = self.shared.store.session_get(&key).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "no session {:?} for agent {:?}",
                key.session, key.agent
            ))
        })?;
        Ok(info(&key, &state, &self.shared.policy.current(), now_us()))
    }

    async fn audit(
        &self,
        key: &SessionKey,
        kind: &str,
        state: &SessionState,
        now: i64,
    ) -> Result<(), ApiError> {
        let body = RecordBody {
            time_us: now,
            kind: kind.into(),
            tenant: key.tenant.clone(),
            agent: key.agent.clone(),
            session: key.session.clone(),
            zone: state.zone.as_str().into(),
            policy_version: self.shared.policy.current().version().into(),
            ..RecordBody::default()
        };
        self.shared.audit.append(body).await?;
        Ok(())
    }
}

fn key(r: Option<&SessionRef>) -> Result<SessionKey, ApiError> {
    let r = r.cloned().unwrap_or_default();
    Ok(SessionKey {
        tenant: identity("session.tenant", &r.tenant)?,
        agent: identity("session.agent", &r.agent)?,
        session: identity("session.session", &r.session)?,
    })
}

fn info(
    key: &SessionKey,
    s: &SessionState,
    policy: &crate::policy::Policy,
    now: i64,
) -> SessionInfo {
    let ended = s.ended(policy, now);
    SessionInfo {
        tenant: key.tenant.clone(),
        agent: key.agent.clone(),
        session: key.session.clone(),
        zone: s.zone.to_proto().into(),
        actions: s.actions,
        reports: s.reports,
        bytes: s.bytes,
        rows: s.rows,
        tags: s.tags.iter().cloned().collect(),
        started_us: s.started_us,
        last_seen_us: s.last_seen_us,
        closed_us: s.closed_us.unwrap_or(0),
        open: ended.is_none(),
        ended_reason: ended.unwrap_or_default(),
        max_tokens: s.max_tokens.unwrap_or(0),
        max_cost_usd: s.max_cost_micro_usd.map_or(0.0, |m| m as f64 / 1e6),
        tokens: s.tokens,
        cost_usd: s.cost_micro_usd as f64 / 1e6,
    }
}

#[tonic::async_trait]
impl Sessions for SessionsService {
    async fn open(
        &self,
        request: Request<OpenSessionRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        Ok(Response::new(
            SessionsService::open(self, request.into_inner()).await?,
        ))
    }

    async fn close(
        &self,
        request: Request<CloseSessionRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        Ok(Response::new(
            SessionsService::close(self, request.into_inner().session).await?,
        ))
    }

    async fn get(
        &self,
        request: Request<GetSessionRequest>,
    ) -> Result<Response<SessionInfo>, Status> {
        Ok(Response::new(
            SessionsService::get(self, request.into_inner().session).await?,
        ))
    }
}
