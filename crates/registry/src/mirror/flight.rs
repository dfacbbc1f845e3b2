//! Single flight: concurrent requests for the same key share one upstream
//! fetch.
//!
//! A fetch may [`Publish`] its result before it ends (a verified manifest,
//! while it is still being written to the store): waiters get it at once,
//! and the key stays in the table until the fetch is done.
//!
//! The fetch runs in a task of its own, not in the request that started it,
//! so a client that disconnects does not cancel the work other clients (and
//! the cache) wait for. The key leaves the table only once the fetch has
//! finished, after it has written its result to the cache: a request that
//! finds no flight therefore finds the cache up to date, and a fetch that
//! starts re-checks the cache before asking the upstream.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Flights in progress, by key.
#[derive(Debug)]
pub(crate) struct Flights<K, V> {
    map: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// Hands a flight's result to its waiters before the flight ends.
#[derive(Debug)]
pub(crate) struct Publish<V>(Arc<watch::Sender<Option<V>>>);

impl<V> Publish<V> {
    pub(crate) fn publish(&self, v: V) {
        self.0.send_replace(Some(v));
    }
}

/// Removes a key when the flight's task ends, even by a panic.
struct Landing<K: Eq + Hash, V> {
    flights: Arc<Flights<K, V>>,
    key: Option<K>,
}

impl<K: Eq + Hash, V> Drop for Landing<K, V> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.flights.map.lock().unwrap().remove(&k);
        }
    }
}

impl<K, V> Flights<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The result of the flight for `key`: joins the one in progress, or
    /// starts `fetch` as a new one. Returns `None` if the flight's task died
    /// without a result, and whether this call joined an existing flight.
    pub(crate) async fn run<F, Fut>(self: &Arc<Self>, key: K, fetch: F) -> (Option<V>, bool)
    where
        F: FnOnce(Publish<V>) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let (mut rx, joined) = {
            let mut map = self.map.lock().unwrap();
            match map.get(&key) {
                Some(rx) => (rx.clone(), true),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let tx = Arc::new(tx);
                    map.insert(key.clone(), rx.clone());
                    let landing = Landing {
                        flights: self.clone(),
                        key: Some(key),
                    };
                    let fut = fetch(Publish(tx.clone()));
                    tokio::spawn(async move {
                        let v = fut.await;
                        // Leave the table first: whoever comes next reads the cache.
                        drop(landing);
                        tx.send_replace(Some(v));
                    });
                    (rx, false)
                }
            }
        };
        let v = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| v.clone());
        (v, joined)
    }

    /// Flights in progress.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_fetch_for_concurrent_callers_and_cancellation_does_not_abort() {
        let flights: Arc<Flights<&'static str, usize>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (f, c, e, mut r) = (
                flights.clone(),
                calls.clone(),
                entered.clone(),
                release_rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                // Joining happens in the same poll as this increment.
                e.fetch_add(1, Ordering::SeqCst);
                f.run("k", move |_| async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    let _ = r.wait_for(|x| *x).await;
                    42
                })
                .await
            }));
        }
        while entered.load(Ordering::SeqCst) < 20 {
            tokio::task::yield_now().await;
        }
        // The first caller goes away; the flight goes on for the others.
        tasks.remove(0).abort();
        release_tx.send(true).unwrap();
        let mut joined = 0;
        for t in tasks {
            let (v, j) = t.await.unwrap();
            assert_eq!(v, Some(42));
            joined += usize::from(j);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(joined >= 18, "{joined}");
        assert_eq!(flights.len(), 0);
        // A published result reaches waiters while the flight goes on.
        let (hold_tx, hold_rx) = watch::channel(false);
        let f2 = flights.clone();
        let (v, _) = flights
            .run("early", move |p| async move {
                p.publish(7);
                let mut r = hold_rx;
                let _ = r.wait_for(|x| *x).await;
                8
            })
            .await;
        assert_eq!(v, Some(7));
        assert_eq!(f2.len(), 1, "the key stays until the flight ends");
        hold_tx.send(true).unwrap();
        while flights.len() > 0 {
            tokio::task::yield_now().await;
        }
        // A panicking fetch leaves no key behind and gives no value.
        let (v, _) = flights.run("p", |_| async { panic!("fetch failed") }).await;
        assert_eq!(v, None);
        assert_eq!(flights.len(), 0);
    }
}
