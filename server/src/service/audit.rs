//! `warden.v1.Audit`: read, verify, export and replay the chain.

use std::pin::Pin;

use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};
use warden_proto::v1::{
    AuditExportRequest, AuditQueryRequest, AuditQueryResponse, AuditRecord, AuditReplayRequest,
    AuditReplayResponse, AuditVerifyRequest, AuditVerifyResponse, audit_server::Audit,
};

use super::Shared;
use crate::alerts::{AlertEvent, AlertEventKind};
use crate::error::ApiError;
use crate::normalize;
use crate::store::AuditFilter;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// Records per page while exporting or replaying.
const PAGE: u32 = 1000;
/// Most records one Replay answer carries; longer sessions are read with Query paging.
const MAX_REPLAY: usize = 100_000;

pub(crate) struct AuditService {
    shared: Shared,
}

impl AuditService {
    pub(crate) fn new(shared: Shared) -> Self {
        AuditService { shared }
    }
}

fn optional_identity(field: &'static str, value: &str) -> Result<String, ApiError> {
    if value.trim().is_empty() {
        Ok(String::new())
    } else {
        Ok(normalize::identity(field, value)?)
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<AuditRecord, Status>> + Send>>;

#[tonic::async_trait]
impl Audit for AuditService {
    async fn query(
        &self,
        request: Request<AuditQueryRequest>,
    ) -> Result<Response<AuditQueryResponse>, Status> {
        let req = request.into_inner();
        let filter = AuditFilter {
            tenant: optional_identity("tenant", &req.tenant)?,
            agent: optional_identity("agent", &req.agent)?,
            session: optional_identity("session", &req.session)?,
        };
        let limit = match req.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let rows = self
            .shared
            .store
            .audit_page(&filter, req.after_seq, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(AuditQueryResponse {
            records: rows.iter().map(|r| r.to_proto()).collect(),
        }))
    }

    async fn verify(
        &self,
        _request: Request<AuditVerifyRequest>,
    ) -> Result<Response<AuditVerifyResponse>, Status> {
        let v = crate::audit::verify(&self.shared.store)
            .await
            .map_err(ApiError::from)?;
        if let Some(f) = &v.failure {
            tracing::error!(seq = f.seq, problem = %f.problem, "audit chain broken");
            let event = AlertEvent {
                decision_seq: f.seq,
                reason: format!("audit chain broken at record {}: {}", f.seq, f.problem),
                ..AlertEvent::new(AlertEventKind::ChainBroken)
            };
            let event = event
                .detail("first_bad_seq", f.seq)
                .detail("records_verified", v.records);
            self.shared.alerts.emit(event).await;
        }
        Ok(Response::new(AuditVerifyResponse {
            ok: v.failure.is_none(),
            records: v.records,
            first_bad_seq: v.failure.as_ref().map_or(0, |f| f.seq),
            problem: v.failure.map(|f| f.problem).unwrap_or_default(),
        }))
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        request: Request<AuditExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let mut after = request.into_inner().after_seq;
        let store = self.shared.store.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(PAGE as usize);
        tokio::spawn(async move {
            loop {
                let page = match store.audit_page(&AuditFilter::default(), after, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(ApiError::from(e)))).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                after = last.seq;
                for row in &page {
                    if tx.send(Ok(row.to_proto())).await.is_err() {
                        return; // client went away
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn replay(
        &self,
        request: Request<AuditReplayRequest>,
    ) -> Result<Response<AuditReplayResponse>, Status> {
        let req = request.into_inner();
        if req.session.trim().is_empty() {
            return Err(Status::invalid_argument("session: is required"));
        }
        let filter = AuditFilter {
            tenant: normalize::identity("tenant", &req.tenant).map_err(ApiError::from)?,
            agent: String::new(),
            session: normalize::identity("session", &req.session).map_err(ApiError::from)?,
        };
        let mut records = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .shared
                .store
                .audit_page(&filter, after, PAGE)
                .await
                .map_err(ApiError::from)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            records.extend(page.iter().map(|r| r.to_proto()));
            if records.len() >= MAX_REPLAY {
                return Err(Status::failed_precondition(format!(
                    "session has more than {MAX_REPLAY} records; page through it with Audit.Query"
                )));
            }
        }
        Ok(Response::new(AuditReplayResponse { records }))
    }
}
