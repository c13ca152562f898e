//! A client of the REST API for tests: drives the API's router in-process
//! (no sockets), keeps the session cookie and CSRF token as a browser
//! script would, and lets the test move the API's clock.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use admin::api::{self, ApiConfig, ApiState, LiveStatus, ManualClock};
use admin::http::PeerAddr;
use admin::remote_support::Deployment;
use admin::Store;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt as _;

/// The API's clock starts here (2026-12-01).
pub const START: i64 = 1_796_083_200;

/// An answer: status, headers, JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

pub fn test_deployment() -> Deployment {
    Deployment {
        domain: "example.test".into(),
        proxy: "maint.example.test:6443".into(),
        ca_file: "comgate-ca.pem".into(),
        central_management: false,
    }
}

/// The systems a test says are connected now, as `(customer, label)`.
#[derive(Default)]
pub struct Connected(pub Mutex<HashSet<(String, String)>>);

impl Connected {
    pub fn set(&self, customer: &str, label: &str, connected: bool) {
        let key = (customer.to_owned(), label.to_owned());
        let mut set = self.0.lock().unwrap();
        if connected {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }
}

impl LiveStatus for Connected {
    fn is_connected(&self, customer: &str, system_label: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .contains(&(customer.to_owned(), system_label.to_owned()))
    }
}

/// The API of one store, with a manual clock.
#[derive(Clone)]
pub struct TestApi {
    pub router: Router,
    pub state: ApiState,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    /// What the API takes as connected now.
    pub live: Arc<Connected>,
}

impl TestApi {
    pub fn new(store: Store) -> Self {
        Self::with_config(store, ApiConfig::new(test_deployment()))
    }

    /// The API as serve runs it: its store holds a seal key (for service
    /// passwords).
    pub fn with_config(store: Store, config: ApiConfig) -> Self {
        let store = store.with_seal_key(admin::seal::SealKey::from_bytes([7; 32]));
        let clock = Arc::new(ManualClock::new(START));
        let live = Arc::new(Connected::default());
        let state = ApiState::new(store.clone(), live.clone(), config).with_clock(clock.clone());
        TestApi {
            router: api::router(state.clone()),
            state,
            clock,
            store,
            live,
        }
    }

    /// A client without a session.
    pub fn client(&self) -> Client {
        Client {
            api: self.clone(),
            cookie: None,
            csrf: None,
            background: false,
        }
    }

    /// A client logged in as `username`; panics unless the login works.
    pub async fn logged_in(&self, username: &str, password: &str) -> Client {
        let mut client = self.client();
        let answer = client.login(username, password).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "login of {username}: {answer:?}"
        );
        client
    }
}

/// One browser: its cookie and CSRF token.
pub struct Client {
    pub api: TestApi,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    /// Send `X-Background-Refresh: true` (an automatic refresh).
    pub background: bool,
}

impl Client {
    pub async fn login(&mut self, username: &str, password: &str) -> Answer {
        let answer = self
            .send(
                Method::POST,
                "/com/api/login",
                Some(serde_json::json!({"username": username, "password": password})),
            )
            .await;
        if let Some(set) = answer.headers.get(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        if let Some(token) = answer.body["csrf_token"].as_str() {
            self.csrf = Some(token.to_owned());
        }
        answer
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Sends a request with the session's cookie and CSRF token.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(csrf) = &self.csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if self.background {
            request = request.header("x-background-refresh", "true");
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.raw(request.body(body).unwrap()).await
    }

    /// Sends `request` as it is, from 127.0.0.1.
    pub async fn raw(&self, mut request: Request<Body>) -> Answer {
        request
            .extensions_mut()
            .insert(PeerAddr(SocketAddr::from(([127, 0, 0, 1], 50000))));
        let response = self.api.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        Answer {
            status,
            headers,
            body,
        }
    }
}
