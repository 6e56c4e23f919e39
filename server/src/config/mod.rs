//! TEMPORARY stub written by the lead so the crate compiles; the config helper
//! replaces this whole file with the real implementation (keep the field names).
pub const VERSION: &str = "7.0.15";

pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub dir: String,
    pub requirepass: Option<Vec<u8>>,
    pub databases: usize,
    pub maxclients: usize,
    pub timeout_secs: u64,
    pub hz: u64,
    pub io_threads: usize,
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    pub logfile: String,
    pub pidfile: String,
}

impl Config {
    pub fn log_level(&self) -> crate::log::Level {
        crate::log::Level::Notice
    }
}

pub fn load(args: &[String]) -> Result<Config, String> {
    let mut c = Config {
        port: 6379,
        bind: vec![],
        dir: String::new(),
        requirepass: None,
        databases: 16,
        maxclients: 10000,
        timeout_secs: 0,
        hz: 10,
        io_threads: 1,
        proto_max_bulk_len: 512 << 20,
        client_query_buffer_limit: 1 << 30,
        logfile: String::new(),
        pidfile: String::new(),
    };
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--port" {
            c.port = args.get(i + 1).and_then(|p| p.parse().ok()).ok_or("bad port")?;
        }
        if args[i] == "--io-threads" {
            c.io_threads = args.get(i + 1).and_then(|p| p.parse().ok()).ok_or("bad io-threads")?;
        }
        i += 1;
    }
    Ok(c)
}
