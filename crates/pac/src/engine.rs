//! Evaluating a PAC: boa_engine on a thread of its own, with the browsers'
//! helper functions and bounds on size, nesting, time and stack.
//!
//! Why a thread: the parser recurses per nesting level and a stack overflow
//! aborts the process, so the engine runs on a thread whose stack is sized for
//! the deepest source [`nesting`](crate::nesting) lets through; and some work
//! cannot be interrupted from inside (a slow regular expression, parsing a
//! pathological expression), so the caller waits with a time-out and walks
//! away from a stuck thread instead of hanging with it.
//!
//! Bounds, all in [`Limits`]:
//! - source size and nesting, checked before parsing;
//! - wall-clock time for loading and for each `FindProxyForURL` call: the
//!   script runs with boa's instruction budget and yields to us every few
//!   thousand instructions, and we stop it at the deadline; work boa does not
//!   yield from (native callbacks into script) is bounded by the loop
//!   iteration and recursion limits, and anything else by the caller's
//!   time-out;
//! - recursion depth, the VM's value stack and `ArrayBuffer` sizes.
//!
//! Heap growth within the time limit (a loop building a huge string) is not
//! capped separately; the time limit bounds how far it gets.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::Ipv4Addr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use boa_engine::context::time::JsInstant;
use boa_engine::context::{Clock, HostHooks};
use boa_engine::{
    js_string, Context, JsError, JsResult, JsString, JsValue, NativeFunction, Script, Source,
};

use crate::clock::{PacClock, SystemClock};
use crate::directive::{parse_answer, Directive};
use crate::error::{PacError, Phase};
use crate::nesting;
use crate::resolver::{NoResolver, Resolver};

/// The helper functions every PAC may call (Mozilla's semantics).
const PAC_UTILS: &str = include_str!("pac_utils.js");

/// Instructions ("cycles" in boa's cost model) between two deadline checks.
const BUDGET: u32 = 20_000;

/// How long the caller waits past the time limit for a thread that does not
/// yield before it gives up on it.
const BACKSTOP_GRACE: Duration = Duration::from_secs(2);

/// Alerts kept per evaluation, and the length of each.
const MAX_ALERTS: usize = 100;
const MAX_ALERT_CHARS: usize = 1000;

/// The bounds a PAC runs within. Every default is here.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted source. Default 1 MiB (corporate PACs with long host
    /// lists reach some hundreds of KiB).
    pub max_source_bytes: usize,
    /// Highest nesting score (see [`crate::nesting`]). Default 8000: 1000
    /// levels of brackets, or an `else if` chain of several thousand.
    pub max_nesting: u32,
    /// Wall-clock time for loading the PAC, and for each call. Default 3 s.
    pub time_limit: Duration,
    /// Iterations of the loops of one function call. Default 10 million.
    pub loop_iteration_limit: u64,
    /// Nested function calls. Default 400.
    pub recursion_limit: usize,
    /// Values on boa's VM stack. Default 10240 (boa's own default).
    pub vm_stack_limit: usize,
    /// Native stack of the evaluator thread. Default 256 MiB: address space
    /// only, pages are used as the parser goes deeper. Measured in a debug
    /// build: the deepest accepted shapes use less than half of it.
    pub thread_stack_bytes: usize,
    /// Largest `ArrayBuffer`. Default 16 MiB.
    pub max_buffer_bytes: u64,
    /// Name lookups (`dnsResolve`, `isResolvable`, `isInNet` on a name) per
    /// load or call; later ones answer "does not resolve". Default 32.
    pub max_lookups: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 1024 * 1024,
            max_nesting: 8000,
            time_limit: Duration::from_secs(3),
            loop_iteration_limit: 10_000_000,
            recursion_limit: 400,
            vm_stack_limit: 10 * 1024,
            thread_stack_bytes: 256 * 1024 * 1024,
            max_buffer_bytes: 16 * 1024 * 1024,
            max_lookups: 32,
        }
    }
}

/// How to run a PAC: its limits, and where its lookups and time come from.
#[derive(Clone)]
pub struct Options {
    pub limits: Limits,
    pub resolver: Arc<dyn Resolver>,
    pub clock: Arc<dyn PacClock>,
}

impl Default for Options {
    /// Default limits, no name resolves, `myIpAddress()` is 127.0.0.1, the
    /// system clock in UTC.
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            resolver: Arc::new(NoResolver),
            clock: Arc::new(SystemClock::default()),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What `FindProxyForURL` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The string as returned.
    pub raw: String,
    /// The same, parsed into the entries a browser would try in order.
    pub directives: Vec<Directive>,
    /// Messages the PAC passed to `alert()` during the call.
    pub alerts: Vec<String>,
}

/// A loaded PAC, ready to answer `FindProxyForURL` for many URLs; its
/// globals persist between calls, as in a browser.
pub struct Pac {
    jobs: Option<mpsc::Sender<Job>>,
    limits: Limits,
    load_alerts: Vec<String>,
}

struct Job {
    url: String,
    host: String,
    reply: mpsc::Sender<Result<Answer, PacError>>,
}

impl Pac {
    /// Checks, parses and runs the top level of `source`, which must define
    /// `FindProxyForURL`.
    pub fn load(source: &str, options: Options) -> Result<Pac, PacError> {
        let limits = options.limits.clone();
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        if source.len() > limits.max_source_bytes {
            return Err(PacError::TooLarge {
                size: source.len(),
                limit: limits.max_source_bytes,
            });
        }
        nesting::check(source, limits.max_nesting).map_err(|line| PacError::TooDeep {
            line,
            limit: limits.max_nesting,
        })?;
        let (loaded_tx, loaded_rx) = mpsc::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let source = source.to_owned();
        std::thread::Builder::new()
            .name("pac-eval".into())
            .stack_size(limits.thread_stack_bytes)
            .spawn(move || worker(source, options, loaded_tx, jobs_rx))
            .map_err(|e| PacError::Engine(format!("cannot start its thread: {e}")))?;
        let load_alerts = match loaded_rx.recv_timeout(limits.time_limit + BACKSTOP_GRACE) {
            Ok(result) => result?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(PacError::TimedOut {
                    limit: limits.time_limit,
                    during: Phase::Loading,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(PacError::Engine(
                    "the evaluator thread ended while loading".into(),
                ))
            }
        };
        Ok(Pac {
            jobs: Some(jobs_tx),
            limits,
            load_alerts,
        })
    }

    /// Messages the PAC passed to `alert()` while loading.
    pub fn load_alerts(&self) -> &[String] {
        &self.load_alerts
    }

    /// `FindProxyForURL(url, host)`. Pass what a browser passes (see
    /// [`browser_arguments`](crate::browser_arguments)). After a time-out
    /// the evaluator is abandoned and every later call returns
    /// [`PacError::Stopped`].
    pub fn find_proxy(&mut self, url: &str, host: &str) -> Result<Answer, PacError> {
        let jobs = self.jobs.as_ref().ok_or(PacError::Stopped)?;
        let (reply_tx, reply_rx) = mpsc::channel();
        let job = Job {
            url: url.to_owned(),
            host: host.to_owned(),
            reply: reply_tx,
        };
        if jobs.send(job).is_err() {
            self.jobs = None;
            return Err(PacError::Engine("the evaluator thread has ended".into()));
        }
        let result = match reply_rx.recv_timeout(self.limits.time_limit + BACKSTOP_GRACE) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(PacError::TimedOut {
                limit: self.limits.time_limit,
                during: Phase::FindProxy,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(PacError::Engine(
                "the evaluator thread ended during a call".into(),
            )),
        };
        if matches!(result, Err(PacError::TimedOut { .. } | PacError::Engine(_))) {
            // Dropping the sender lets a stuck thread exit once it comes back.
            self.jobs = None;
        }
        result
    }
}

/// Loads `source` and answers one URL: what a browser would use for it.
pub fn find_proxy_for_url(source: &str, url: &str, options: Options) -> Result<Answer, PacError> {
    let (url, host) = crate::browser_arguments(url)?;
    Pac::load(source, options)?.find_proxy(&url, &host)
}

// ------------------------------------------------------------ the thread

fn worker(
    source: String,
    options: Options,
    loaded: mpsc::Sender<Result<Vec<String>, PacError>>,
    jobs: mpsc::Receiver<Job>,
) {
    let limits = options.limits.clone();
    let mut ctx = match new_context(&options) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = loaded.send(Err(e));
            return;
        }
    };
    match load(&mut ctx, &source, &limits) {
        Ok(()) => {
            if loaded.send(Ok(take_alerts(&ctx))).is_err() {
                return;
            }
        }
        Err(e) => {
            let _ = loaded.send(Err(e));
            return;
        }
    }
    for job in jobs {
        let result = call(&mut ctx, &job.url, &job.host, &limits);
        // A script stopped at its deadline leaves the VM mid-way: no more calls.
        let stop = matches!(result, Err(PacError::TimedOut { .. }));
        let _ = job.reply.send(result);
        if stop {
            return;
        }
    }
}

/// State the native functions reach through the context.
struct Natives {
    resolver: Arc<dyn Resolver>,
    deadline: Cell<Instant>,
    lookups_left: Cell<u32>,
    max_lookups: u32,
    alerts: RefCell<Vec<String>>,
}

/// boa's host hooks: local time zone and buffer size from our options.
struct Hooks {
    clock: Arc<dyn PacClock>,
    max_buffer_bytes: u64,
}

impl HostHooks for Hooks {
    fn local_timezone_offset_seconds(&self, unix_time_seconds: i64) -> i32 {
        self.clock.local_offset_seconds(unix_time_seconds)
    }

    fn max_buffer_size(&self, _context: &mut Context) -> u64 {
        self.max_buffer_bytes
    }
}

/// boa's clock: `new Date()` reads our clock; the monotonic part is real time.
struct BoaClock {
    clock: Arc<dyn PacClock>,
    base: Instant,
}

impl Clock for BoaClock {
    fn now(&self) -> JsInstant {
        let elapsed = self.base.elapsed();
        JsInstant::new(elapsed.as_secs(), elapsed.subsec_nanos())
    }

    fn system_time_millis(&self) -> i64 {
        self.clock.now_millis()
    }
}

fn new_context(options: &Options) -> Result<Context, PacError> {
    let limits = &options.limits;
    let hooks = Rc::new(Hooks {
        clock: options.clock.clone(),
        max_buffer_bytes: limits.max_buffer_bytes,
    });
    let clock = Rc::new(BoaClock {
        clock: options.clock.clone(),
        base: Instant::now(),
    });
    let mut ctx = Context::builder()
        .host_hooks(hooks)
        .clock(clock)
        .build()
        .map_err(|e| PacError::Engine(e.to_string()))?;
    let rt = ctx.runtime_limits_mut();
    rt.set_loop_iteration_limit(limits.loop_iteration_limit);
    rt.set_recursion_limit(limits.recursion_limit);
    rt.set_stack_size_limit(limits.vm_stack_limit);
    ctx.insert_data(Natives {
        resolver: options.resolver.clone(),
        deadline: Cell::new(Instant::now() + limits.time_limit),
        lookups_left: Cell::new(limits.max_lookups),
        max_lookups: limits.max_lookups,
        alerts: RefCell::new(Vec::new()),
    });
    let natives: [(&str, usize, NativeFunction); 3] = [
        ("dnsResolve", 1, NativeFunction::from_fn_ptr(dns_resolve)),
        ("myIpAddress", 0, NativeFunction::from_fn_ptr(my_ip_address)),
        ("alert", 1, NativeFunction::from_fn_ptr(alert)),
    ];
    for (name, length, f) in natives {
        ctx.register_global_callable(JsString::from(name), length, f)
            .map_err(|e| PacError::Engine(e.to_string()))?;
    }
    ctx.eval(Source::from_bytes(PAC_UTILS))
        .map_err(|e| PacError::Engine(format!("helper functions: {e}")))?;
    Ok(ctx)
}

fn load(ctx: &mut Context, source: &str, limits: &Limits) -> Result<(), PacError> {
    let script = Script::parse(Source::from_bytes(source), None, ctx).map_err(syntax_error)?;
    run(ctx, &script, limits, Phase::Loading)?;
    let f = ctx
        .global_object()
        .get(js_string!("FindProxyForURL"), ctx)
        .map_err(|e| script_error(ctx, &e, Phase::Loading))?;
    if !f.is_callable() {
        return Err(PacError::NoFindProxyForURL);
    }
    Ok(())
}

fn call(ctx: &mut Context, url: &str, host: &str, limits: &Limits) -> Result<Answer, PacError> {
    // The arguments go in as string literals: nothing is added to the PAC's
    // global scope.
    let code = format!("FindProxyForURL({}, {})", js_literal(url), js_literal(host));
    let script = Script::parse(Source::from_bytes(&code), None, ctx)
        .map_err(|e| PacError::Engine(format!("cannot build the call: {e}")))?;
    let value = run(ctx, &script, limits, Phase::FindProxy)?;
    let alerts = take_alerts(ctx);
    match value.as_string() {
        Some(s) => {
            let raw = s.to_std_string_escaped();
            Ok(Answer {
                directives: parse_answer(&raw),
                raw,
                alerts,
            })
        }
        None => Err(PacError::NotAString(value.type_of().to_owned())),
    }
}

/// Runs `script` to completion or to the deadline.
fn run(
    ctx: &mut Context,
    script: &Script,
    limits: &Limits,
    phase: Phase,
) -> Result<JsValue, PacError> {
    let deadline = Instant::now() + limits.time_limit;
    if let Some(n) = ctx.get_data::<Natives>() {
        n.deadline.set(deadline);
        n.lookups_left.set(n.max_lookups);
    }
    let outcome = {
        let mut fut = pin!(script.evaluate_async_with_budget(ctx, BUDGET));
        let mut task = std::task::Context::from_waker(Waker::noop());
        loop {
            match fut.as_mut().poll(&mut task) {
                Poll::Ready(result) => break Some(result),
                // boa yields every BUDGET instructions, then wants polling again.
                Poll::Pending if Instant::now() >= deadline => break None,
                Poll::Pending => {}
            }
        }
    };
    match outcome {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(script_error(ctx, &e, phase)),
        None => Err(PacError::TimedOut {
            limit: limits.time_limit,
            during: phase,
        }),
    }
}

fn take_alerts(ctx: &Context) -> Vec<String> {
    ctx.get_data::<Natives>()
        .map(|n| std::mem::take(&mut *n.alerts.borrow_mut()))
        .unwrap_or_default()
}

/// A JavaScript string literal for `s` (JSON escaping is valid JavaScript).
fn js_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// boa reports `... at line L, col C`; keep the message and the position.
fn syntax_error(e: JsError) -> PacError {
    let text = match e.as_native() {
        Some(native) => native.message().to_owned(),
        None => e.to_string(),
    };
    let (message, line, column) = match text.rfind(" at line ") {
        Some(at) => {
            let position = &text[at + " at line ".len()..];
            let mut parts = position.split(", col ");
            let line = parts.next().and_then(|l| l.trim().parse().ok());
            let column = parts
                .next()
                .and_then(|c| c.split(|ch: char| !ch.is_ascii_digit()).next())
                .and_then(|c| c.parse().ok());
            (text[..at].to_owned(), line, column)
        }
        None => (text, None, None),
    };
    PacError::Syntax {
        line,
        column,
        message,
    }
}

fn script_error(ctx: &mut Context, e: &JsError, phase: Phase) -> PacError {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or_default().to_owned();
    if first.starts_with("RuntimeLimitError") {
        return PacError::Limit {
            during: phase,
            message: first,
        };
    }
    let message = match e.try_native(ctx) {
        Ok(native) => native.to_string(),
        Err(_) => first,
    };
    PacError::Script {
        during: phase,
        message: message.lines().next().unwrap_or_default().to_owned(),
    }
}

// ------------------------------------------------------------ natives

fn string_arg(args: &[JsValue], ctx: &mut Context) -> JsResult<String> {
    let v = args.first().cloned().unwrap_or_default();
    Ok(v.to_string(ctx)?.to_std_string_escaped())
}

/// `dnsResolve(host)`: the dotted quad, or null. IP literals answer
/// themselves; names go to the resolver while the call has time and lookups
/// left.
fn dns_resolve(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let host = string_arg(args, ctx)?;
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(JsString::from(ip.to_string().as_str()).into());
    }
    let Some(n) = ctx.get_data::<Natives>() else {
        return Ok(JsValue::null());
    };
    if host.is_empty() || n.lookups_left.get() == 0 || Instant::now() >= n.deadline.get() {
        return Ok(JsValue::null());
    }
    n.lookups_left.set(n.lookups_left.get() - 1);
    Ok(match n.resolver.resolve(&host) {
        Some(ip) => JsString::from(ip.to_string().as_str()).into(),
        None => JsValue::null(),
    })
}

fn my_ip_address(_this: &JsValue, _args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let ip = ctx
        .get_data::<Natives>()
        .map(|n| n.resolver.my_ip_address())
        .unwrap_or(Ipv4Addr::LOCALHOST);
    Ok(JsString::from(ip.to_string().as_str()).into())
}

fn alert(_this: &JsValue, args: &[JsValue], ctx: &mut Context) -> JsResult<JsValue> {
    let message: String = string_arg(args, ctx)?
        .chars()
        .take(MAX_ALERT_CHARS)
        .collect();
    if let Some(n) = ctx.get_data::<Natives>() {
        let mut alerts = n.alerts.borrow_mut();
        if alerts.len() < MAX_ALERTS {
            alerts.push(message);
        }
    }
    Ok(JsValue::undefined())
}
