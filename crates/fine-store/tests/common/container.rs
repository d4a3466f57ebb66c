//! A throwaway MongoDB in Docker, through testcontainers, for a test binary
//! run without `MONGODB_URI` where a Docker engine answers (see
//! `docker::probe`, asked first).
//!
//! NOT RUN where this was written: that machine has the docker CLI but no
//! engine. There, only the probe (`tests/docker_probe.rs`), the way to a
//! fake engine that answers the ping and then fails testcontainers'
//! `containers/create` (a loud skip), and the container's script with a
//! stand-in mongod have run. Pulling `mongo:7`, `replSetInitiate` and the
//! heartbeat against a real engine are untried until the first run with one.
//!
//! One container per test binary, on a thread of its own: tests run on
//! several threads, each `#[tokio::test]` on its own runtime that ends with
//! the test, and `crash.rs` asks from a plain `#[test]`. The thread owns a
//! runtime that lives as long as the binary, starts the container on it,
//! hands back the URI and then holds the container for good. So the
//! container is never dropped, and testcontainers' remove-on-drop never
//! runs; nor does it have a reaper (no Ryuk in testcontainers-rs 0.28, and
//! its `watchdog` feature acts only on SIGINT/SIGTERM/SIGQUIT). Instead the
//! thread beats: it touches a file in the container every
//! [`HEARTBEAT`], and the container's own script stops mongod once the
//! file is [`STALE_MINUTES`] old; the container is created with
//! auto-remove, so it then goes. A test binary that exits (or is killed)
//! leaves its MongoDB behind for five minutes at most.
#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use mongodb::bson::doc;
use testcontainers::core::{CmdWaitFor, ExecCommand, IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// `mongo:7`: a real MongoDB, the server the store is written for.
const IMAGE: &str = "mongo";
const TAG: &str = "7";
const PORT: u16 = 27017;
const REPLICA_SET: &str = "rs0";

/// The replica set's one member, as mongod inside the container reaches
/// itself. Not the mapped host:port: `replSetInitiate` wants one member
/// that is the node itself, and mongod checks that by port and, failing
/// that, by connecting to it, and from inside the container the mapped
/// port leads nowhere. The tests never connect to the member's address:
/// their URI has `directConnection=true`.
const MEMBER: &str = "localhost:27017";

/// The file the keeper thread touches, and how often.
const ALIVE: &str = "/tmp/alive";
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// How old the file may get before the container stops itself.
/// More than the first beat can take: ready, then primary (3 minutes).
pub const STALE_MINUTES: u32 = 5;

/// Pull (first time only), start and wait: the image is some 300 MB.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// Until mongod says "Waiting for connections".
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const PRIMARY_TIMEOUT: Duration = Duration::from_secs(60);

/// The container's command: mongod as a replica-set member, for as long
/// as the test binary beats. A small WiredTiger cache: several test
/// binaries' containers may be up at once.
fn script() -> String {
    format!(
        r#"touch {ALIVE}
mongod --replSet {REPLICA_SET} --bind_ip_all --port {PORT} --wiredTigerCacheSizeGB 0.25 &
mongod=$!
trap 'kill $mongod; wait $mongod; exit 0' TERM INT
while sleep 10; do
  kill -0 $mongod 2>/dev/null || {{ wait $mongod; exit $?; }}
  if [ -z "$(find {ALIVE} -mmin -{STALE_MINUTES})" ]; then
    echo "no heartbeat from the test binary for {STALE_MINUTES} minutes: stopping mongod"
    kill $mongod; wait $mongod; exit 0
  fi
done
"#
    )
}

/// Starts the binary's MongoDB on a thread of its own and returns its URI,
/// `mongodb://host:port/?directConnection=true`; or why it could not.
pub fn start() -> Result<String, String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("mongodb-container".to_string())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = sender.send(Err(format!("no runtime for the container: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                match start_container().await {
                    Ok((container, uri)) => {
                        let _ = sender.send(Ok(uri));
                        keep(container).await;
                    }
                    // A container that started but failed later was dropped
                    // (and so removed) inside `start_container`.
                    Err(why) => {
                        let _ = sender.send(Err(why));
                    }
                }
            });
        })
        .map_err(|e| format!("no thread for the container: {e}"))?;
    receiver.recv_timeout(START_TIMEOUT).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => format!(
            "{IMAGE}:{TAG} was not up within {} s",
            START_TIMEOUT.as_secs()
        ),
        mpsc::RecvTimeoutError::Disconnected => {
            "the thread starting the container died".to_string()
        }
    })?
}

async fn start_container() -> Result<(ContainerAsync<GenericImage>, String), String> {
    let container = GenericImage::new(IMAGE, TAG)
        .with_exposed_port(PORT.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Waiting for connections"))
        .with_entrypoint("bash")
        .with_cmd(["-c".to_string(), script()])
        .with_label("alma-bursar-sync.tests", "fine-store-mongodb")
        .with_startup_timeout(READY_TIMEOUT)
        .with_host_config_modifier(|config| config.auto_remove = Some(true))
        .start()
        .await
        .map_err(|e| format!("{IMAGE}:{TAG} did not start: {e}"))?;
    let host = container
        .get_host()
        .await
        .map_err(|e| format!("no host for the container: {e}"))?;
    let port = container
        .get_host_port_ipv4(PORT)
        .await
        .map_err(|e| format!("no mapped port for {PORT}: {e}"))?;
    // The port is the IPv4 mapping, and `localhost` may resolve to ::1 first.
    let host = match host.to_string() {
        name if name == "localhost" => "127.0.0.1".to_string(),
        other => other,
    };
    let uri = format!("mongodb://{host}:{port}/?directConnection=true");
    initiate_replica_set(&uri, MEMBER)
        .await
        .map_err(|why| format!("{IMAGE}:{TAG} at {uri}: {why}"))?;
    Ok((container, uri))
}

/// Holds the container for the rest of the binary's life, beating.
async fn keep(container: ContainerAsync<GenericImage>) {
    loop {
        // A missed beat is no matter: the container waits minutes.
        let touch = ExecCommand::new(["touch", ALIVE]).with_cmd_ready_condition(CmdWaitFor::exit());
        let _ = container.exec(touch).await;
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Makes the mongod at `uri` (a `--replSet` member not yet configured)
/// the primary of a one-member replica set whose member is `member`, and
/// waits until it is: the store's transactions need a replica set.
pub async fn initiate_replica_set(uri: &str, member: &str) -> Result<(), String> {
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .map_err(|e| format!("no client: {e}"))?;
    let admin = client.database("admin");
    let config = doc! {
        "_id": REPLICA_SET,
        "members": [{ "_id": 0, "host": member }],
    };
    match admin.run_command(doc! { "replSetInitiate": config }).await {
        Ok(_) => {}
        Err(e) if already_initialized(&e) => {}
        Err(e) => return Err(format!("replSetInitiate: {e}")),
    }
    let deadline = Instant::now() + PRIMARY_TIMEOUT;
    loop {
        let hello = admin
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| format!("hello: {e}"))?;
        if hello.get_bool("isWritablePrimary").unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not primary within {} s; last hello: {hello}",
                PRIMARY_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// MongoDB's `AlreadyInitialized` (23).
fn already_initialized(error: &mongodb::error::Error) -> bool {
    matches!(&*error.kind, mongodb::error::ErrorKind::Command(command) if command.code == 23)
}
