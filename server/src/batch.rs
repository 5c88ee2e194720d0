//! The two halves of group commit that the audit writer (`audit/writer.rs`) and the
//! SQLite step writer (`store/steps.rs`) share: take everything waiting as one batch,
//! and answer each caller, or every caller with the batch's error.

use tokio::sync::{mpsc, oneshot};

/// Waits for the next item and takes every item already waiting behind it, up to
/// `max` in `batch`. `false` once every sender is gone and nothing is left.
pub(crate) async fn next_batch<T>(
    rx: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
) -> bool {
    let Some(first) = rx.recv().await else {
        return false;
    };
    batch.push(first);
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    true
}

/// Sends each caller its answer (in order), or every caller the batch's error. A
/// caller that stopped waiting is skipped.
pub(crate) fn answer_all<A, E: Clone>(
    waiting: Vec<oneshot::Sender<Result<A, E>>>,
    result: Result<Vec<A>, E>,
) {
    match result {
        Ok(answers) => {
            for (done, answer) in waiting.into_iter().zip(answers) {
                let _ = done.send(Ok(answer));
            }
        }
        Err(e) => {
            for done in waiting {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{answer_all, next_batch};
    use tokio::sync::{mpsc, oneshot};

    #[tokio::test]
    async fn takes_what_waits_up_to_the_limit() {
        let (tx, mut rx) = mpsc::channel(8);
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
        let mut batch = Vec::new();
        assert!(next_batch(&mut rx, &mut batch, 3).await);
        assert_eq!(batch, [0, 1, 2]);
        batch.clear();
        assert!(next_batch(&mut rx, &mut batch, 3).await);
        assert_eq!(batch, [3, 4]);
        drop(tx);
        batch.clear();
        assert!(!next_batch(&mut rx, &mut batch, 3).await);
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn answers_each_or_fails_all() {
        let (a, wait_a) = oneshot::channel::<Result<u8, String>>();
        let (b, wait_b) = oneshot::channel();
        answer_all(vec![a, b], Ok(vec![1, 2]));
        assert_eq!(
            (wait_a.await.unwrap(), wait_b.await.unwrap()),
            (Ok(1), Ok(2))
        );
        let (a, wait_a) = oneshot::channel::<Result<u8, String>>();
        let (b, wait_b) = oneshot::channel();
        answer_all(vec![a, b], Err("disk full".to_string()));
        assert_eq!(wait_a.await.unwrap(), Err("disk full".to_string()));
        assert_eq!(wait_b.await.unwrap(), Err("disk full".to_string()));
    }
}
