//! bicameral's zenoh layer: the only crate that touches zenoh.
//!
//! * [`ZenohConfig`]: peer / client / router, listen and connect endpoints (TCP), multicast
//!   scouting (off by default), user/password authentication and access control.
//! * [`Node`]: a named node's session on one robot's key space ([`bicameral_msgs::keys::Keys`]).
//! * [`Publisher`]: typed, fills `seq`, reuses its encode buffer; [`Qos::Control`] topics
//!   (chunks, commands, e-stop) are express with real-time priority and drop rather than block.
//! * [`Subscriber`]: typed; FIFO ([`Node::subscribe`]) or latest-value ([`Node::latest`],
//!   a ring of one: a slow reader only ever sees the newest message). Payloads that do not
//!   decode come back as [`TransportError::Decode`] naming the key, never a panic.
//! * Liveliness: every node declares `bicameral/{robot}/alive/{node}` ([`Node::declare_alive`]);
//!   [`Node::watch_alive`] reports nodes appearing and vanishing.

mod config;
mod error;

use std::marker::PhantomData;
use std::time::Duration;

use bicameral_msgs::keys::Keys;
use bicameral_msgs::{Message, decode, encode};
use zenoh::Wait;
use zenoh::handlers::{FifoChannelHandler, RingChannel, RingChannelHandler};
use zenoh::qos::{CongestionControl, Priority};
use zenoh::sample::{Sample, SampleKind};

pub use config::{AclConfig, AuthConfig, DEFAULT_PORT, SessionMode, ZenohConfig};
pub use error::TransportError;
/// The zenoh session type (for callers that need raw access, e.g. benchmarks and bridges).
pub use zenoh::Session;

/// Quality of service of a publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Control topics (plans, chunks, commands, e-stop): express (no batching), real-time
    /// priority, drop under congestion instead of blocking the sender.
    Control,
    /// State and status: default priority, no batching, drop under congestion.
    State,
    /// Bulk (camera frames): low priority, drop under congestion.
    Bulk,
}

/// A node's zenoh session on one robot's key space.
#[derive(Debug, Clone)]
pub struct Node {
    session: Session,
    keys: Keys,
    name: String,
}

impl Node {
    /// Opens a session (blocking) for node `name` of robot `robot`.
    pub fn open(cfg: &ZenohConfig, robot: &str, name: &str) -> Result<Self, TransportError> {
        let keys = Keys::new(robot).map_err(|e| TransportError::Config {
            file: "node".into(),
            field: "robot".into(),
            problem: e.to_string(),
        })?;
        bicameral_msgs::keys::check_chunk("node", name).map_err(|e| TransportError::Config {
            file: "node".into(),
            field: "name".into(),
            problem: e.to_string(),
        })?;
        let session = zenoh::open(cfg.to_zenoh()?)
            .wait()
            .map_err(|e| TransportError::zenoh("open session", e))?;
        tracing::debug!(robot, node = name, zid = %session.zid(), "zenoh session open");
        Ok(Node {
            session,
            keys,
            name: name.to_string(),
        })
    }

    /// Another node name on the same session (co-located nodes share one session).
    pub fn with_name(&self, name: &str) -> Result<Self, TransportError> {
        bicameral_msgs::keys::check_chunk("node", name).map_err(|e| TransportError::Config {
            file: "node".into(),
            field: "name".into(),
            problem: e.to_string(),
        })?;
        Ok(Node {
            session: self.session.clone(),
            keys: self.keys.clone(),
            name: name.to_string(),
        })
    }

    /// The robot's key expressions.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The robot id.
    pub fn robot(&self) -> &str {
        self.keys.robot()
    }

    /// The underlying session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A typed publisher on `key`.
    pub fn publisher<M: Message>(
        &self,
        key: String,
        qos: Qos,
    ) -> Result<Publisher<M>, TransportError> {
        let (priority, express) = match qos {
            Qos::Control => (Priority::RealTime, true),
            Qos::State => (Priority::Data, true),
            Qos::Bulk => (Priority::DataLow, false),
        };
        let inner = self
            .session
            .declare_publisher(key.clone())
            .priority(priority)
            .express(express)
            .congestion_control(CongestionControl::Drop)
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("declare publisher {key}"), e))?;
        Ok(Publisher {
            inner,
            key,
            seq: 0,
            buf: Vec::with_capacity(1024),
            robot: self.keys.robot().to_string(),
            _m: PhantomData,
        })
    }

    /// A FIFO subscriber on `key` (holds up to 256 messages; a full queue blocks zenoh's
    /// receive thread, so use it only for low-rate topics and read it promptly).
    pub fn subscribe<M: Message>(&self, key: String) -> Result<Subscriber<M>, TransportError> {
        let inner = self
            .session
            .declare_subscriber(key.clone())
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("declare subscriber {key}"), e))?;
        Ok(Subscriber {
            rx: Rx::Fifo(inner),
            key,
            _m: PhantomData,
        })
    }

    /// A latest-value subscriber on `key`: a ring of one, so a slow reader gets the newest
    /// message and never blocks zenoh.
    pub fn latest<M: Message>(&self, key: String) -> Result<Subscriber<M>, TransportError> {
        self.buffered(key, 1)
    }

    /// A subscriber keeping the newest `capacity` messages in order: when the reader falls
    /// behind, the oldest are dropped; it never blocks zenoh's receive thread (and with it the
    /// e-stop and chunk callbacks of the same session). For readers that want every message of
    /// a fast topic, such as recorders.
    pub fn buffered<M: Message>(
        &self,
        key: String,
        capacity: usize,
    ) -> Result<Subscriber<M>, TransportError> {
        let inner = self
            .session
            .declare_subscriber(key.clone())
            .with(RingChannel::new(capacity.max(1)))
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("declare subscriber {key}"), e))?;
        Ok(Subscriber {
            rx: Rx::Ring(inner),
            key,
            _m: PhantomData,
        })
    }

    /// Calls `f` on zenoh's receive thread for every message on `key` (decoded, or the decode
    /// error naming the key). `f` must be quick and must not block.
    pub fn on_message<M: Message>(
        &self,
        key: String,
        f: impl Fn(Result<M, TransportError>) + Send + Sync + 'static,
    ) -> Result<CallbackSubscriber, TransportError> {
        let inner = self
            .session
            .declare_subscriber(key.clone())
            .callback(move |sample: Sample| f(decode_sample(&sample)))
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("declare subscriber {key}"), e))?;
        Ok(CallbackSubscriber { _inner: inner })
    }

    /// Declares this node alive (`bicameral/{robot}/alive/{node}`) until the token is dropped.
    pub fn declare_alive(&self) -> Result<AliveToken, TransportError> {
        let key = self.keys.alive(&self.name);
        let token = self
            .session
            .liveliness()
            .declare_token(key.clone())
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("liveliness token {key}"), e))?;
        Ok(AliveToken { _token: token })
    }

    /// Watches the robot's liveliness tokens (including those already alive).
    pub fn watch_alive(&self) -> Result<AliveWatch, TransportError> {
        let key = self.keys.alive_all();
        let inner = self
            .session
            .liveliness()
            .declare_subscriber(key.clone())
            .history(true)
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("liveliness subscriber {key}"), e))?;
        Ok(AliveWatch { inner, key })
    }

    /// Publishes raw bytes on `key` (bridges, fault injection); no encoding, no checks.
    pub fn put_raw(&self, key: &str, bytes: &[u8]) -> Result<(), TransportError> {
        self.session
            .put(key, bytes.to_vec())
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("put {key}"), e))
    }

    /// Closes the session.
    pub fn close(&self) -> Result<(), TransportError> {
        self.session
            .close()
            .wait()
            .map_err(|e| TransportError::zenoh("close session", e))
    }
}

fn decode_sample<M: Message>(sample: &Sample) -> Result<M, TransportError> {
    let bytes = sample.payload().to_bytes();
    decode::<M>(&bytes).map_err(|source| TransportError::Decode {
        key: sample.key_expr().as_str().to_string(),
        source,
    })
}

/// A typed publisher.
#[derive(Debug)]
pub struct Publisher<M: Message> {
    inner: zenoh::pubsub::Publisher<'static>,
    key: String,
    seq: u64,
    buf: Vec<u8>,
    robot: String,
    _m: PhantomData<fn(M)>,
}

impl<M: Message> Publisher<M> {
    /// Publishes `message`, setting its header's `seq` (this publisher's count) and `robot`;
    /// the stamp is the caller's (from its clock).
    pub fn put(&mut self, message: &mut M) -> Result<(), TransportError> {
        let h = message.header_mut();
        h.seq = self.seq;
        if h.robot != self.robot {
            h.robot.clone_from(&self.robot);
        }
        self.seq += 1;
        self.buf.clear();
        bicameral_msgs::encode_into(message, &mut self.buf).map_err(|source| {
            TransportError::Encode {
                key: self.key.clone(),
                source,
            }
        })?;
        self.inner
            .put(self.buf.as_slice())
            .wait()
            .map_err(|e| TransportError::zenoh(&format!("put {}", self.key), e))
    }

    /// Messages published so far.
    pub fn count(&self) -> u64 {
        self.seq
    }

    /// The key expression.
    pub fn key(&self) -> &str {
        &self.key
    }
}

#[derive(Debug)]
enum Rx {
    Fifo(zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>),
    Ring(zenoh::pubsub::Subscriber<RingChannelHandler<Sample>>),
}

/// A typed subscriber (FIFO or latest-value).
#[derive(Debug)]
pub struct Subscriber<M: Message> {
    rx: Rx,
    key: String,
    _m: PhantomData<fn() -> M>,
}

impl<M: Message> Subscriber<M> {
    /// The key expression.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The next message if one is waiting.
    pub fn try_recv(&self) -> Option<Result<M, TransportError>> {
        let sample = match &self.rx {
            Rx::Fifo(s) => s.try_recv().ok().flatten(),
            Rx::Ring(s) => s.try_recv().ok().flatten(),
        }?;
        Some(decode_sample(&sample))
    }

    /// Waits up to `timeout` for the next message.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<M, TransportError> {
        self.recv_sample_timeout(timeout)
            .and_then(|s| decode_sample(&s))
    }

    /// Waits up to `timeout` for the next message and the key it arrived on (for wildcard
    /// subscriptions).
    pub fn recv_with_key_timeout(&self, timeout: Duration) -> Result<(String, M), TransportError> {
        let s = self.recv_sample_timeout(timeout)?;
        Ok((s.key_expr().as_str().to_string(), decode_sample(&s)?))
    }

    fn recv_sample_timeout(&self, timeout: Duration) -> Result<Sample, TransportError> {
        let r = match &self.rx {
            Rx::Fifo(s) => s.recv_timeout(timeout),
            Rx::Ring(s) => s.recv_timeout(timeout),
        };
        match r {
            Ok(Some(sample)) => Ok(sample),
            Ok(None) => Err(TransportError::Timeout {
                key: self.key.clone(),
                timeout_ms: timeout.as_millis() as u64,
            }),
            Err(_) => Err(TransportError::Closed(self.key.clone())),
        }
    }

    /// Waits for the next message (async).
    pub async fn recv_async(&self) -> Result<M, TransportError> {
        let r = match &self.rx {
            Rx::Fifo(s) => s.recv_async().await,
            Rx::Ring(s) => s.recv_async().await,
        };
        let sample = r.map_err(|_| TransportError::Closed(self.key.clone()))?;
        decode_sample(&sample)
    }
}

/// A subscriber whose messages go to a callback; undeclared when dropped.
#[derive(Debug)]
pub struct CallbackSubscriber {
    _inner: zenoh::pubsub::Subscriber<()>,
}

/// A node's liveliness token; the node disappears from [`AliveWatch`]es when it is dropped
/// (or the process dies).
#[derive(Debug)]
pub struct AliveToken {
    _token: zenoh::liveliness::LivelinessToken,
}

/// A node appearing or vanishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveliness {
    /// Node came alive.
    Alive(String),
    /// Node is gone.
    Gone(String),
}

/// Watches a robot's liveliness tokens.
#[derive(Debug)]
pub struct AliveWatch {
    inner: zenoh::pubsub::Subscriber<FifoChannelHandler<Sample>>,
    key: String,
}

impl AliveWatch {
    /// The next change, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Liveliness, TransportError> {
        match self.inner.recv_timeout(timeout) {
            Ok(Some(sample)) => {
                let node = sample
                    .key_expr()
                    .as_str()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                Ok(match sample.kind() {
                    SampleKind::Put => Liveliness::Alive(node),
                    SampleKind::Delete => Liveliness::Gone(node),
                })
            }
            Ok(None) => Err(TransportError::Timeout {
                key: self.key.clone(),
                timeout_ms: timeout.as_millis() as u64,
            }),
            Err(_) => Err(TransportError::Closed(self.key.clone())),
        }
    }

    /// Waits until `node` is reported alive (other changes are consumed and skipped), up to
    /// `timeout`. To wait for several nodes use [`Self::wait_alive_all`].
    pub fn wait_alive(&self, node: &str, timeout: Duration) -> Result<(), TransportError> {
        self.wait_alive_all(&[node], timeout)
    }

    /// Waits until every node of `nodes` has been reported alive, in any order, up to
    /// `timeout`.
    pub fn wait_alive_all(&self, nodes: &[&str], timeout: Duration) -> Result<(), TransportError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut missing: Vec<&str> = nodes.to_vec();
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Liveliness::Alive(n) = self.recv_timeout(left)? {
                missing.retain(|m| *m != n);
            }
        }
        Ok(())
    }

    /// Waits until `node` is reported gone, up to `timeout`.
    pub fn wait_gone(&self, node: &str, timeout: Duration) -> Result<(), TransportError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if let Liveliness::Gone(n) = self.recv_timeout(left)?
                && n == node
            {
                return Ok(());
            }
        }
    }
}

/// Encodes a message (re-exported codec, for raw publishers such as test injectors).
pub fn encode_message<M: Message>(m: &M) -> Result<Vec<u8>, bicameral_msgs::MsgError> {
    encode(m)
}
