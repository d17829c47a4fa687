//! The key table: every config key, once.
//!
//! Each line is `rust_field: type = default => "strfryName", origin, reload, "doc";`
//! * `type` is `u64`, `bool` or `String`;
//! * `origin` is `strfry` (strfry's key, name and default; only `relay.info.name` and
//!   `relay.info.description` default to wok's own words) or `wok` (a wok-only key);
//! * `reload` is `restart` (strfry's noReload, the R column: a change needs a
//!   restart) or `live` (takes effect on hot reload);
//! * `doc` is a one-line description, used for the rendered default config.
//!
//! Within a section, plain keys come first, then subsections
//! `[field: StructName => "strfryName", "doc"] { … }`.
//! Adding a key is one line here; nothing else needs to change.

use super::schema::config_section;

config_section! {
    path () prefix ()
    /// wok's configuration: every strfry key under its strfry name, with strfry's default
    /// (but the relay's NIP-11 name and description, which name wok).
    pub struct Config {
        db: String = "./strfry-db/" => "db", strfry, restart,
            "Directory holding the LMDB database files (data.mdb and lock.mdb)";

        [db_params: DbParamsConfig => "dbParams", "LMDB environment settings"] {
            maxreaders: u64 = 256 => "maxreaders", strfry, restart,
                "Upper bound on threads and processes holding an LMDB read transaction at the same time";
            mapsize: u64 = 10_995_116_277_760 => "mapsize", strfry, restart,
                "Bytes of address space reserved for the LMDB memory map (10 TiB); this is virtual memory, not disk usage";
            no_read_ahead: bool = false => "noReadAhead", strfry, restart,
                "Ask the OS not to read ahead in the database file; helps when the database is much larger than RAM";
        }

        [events: EventsConfig => "events", "Limits applied to incoming events"] {
            max_event_size: u64 = 65536 => "maxEventSize", strfry, live,
                "Largest accepted event, in bytes of normalised JSON; import and upload also use it as their line limit";
            reject_events_newer_than_seconds: u64 = 900 => "rejectEventsNewerThanSeconds", strfry, live,
                "Refuse events whose created_at lies more than this many seconds in the future";
            reject_events_older_than_seconds: u64 = 94_608_000 => "rejectEventsOlderThanSeconds", strfry, live,
                "Refuse events whose created_at lies more than this many seconds in the past (about three years)";
            reject_ephemeral_events_older_than_seconds: u64 = 60 => "rejectEphemeralEventsOlderThanSeconds", strfry, live,
                "Refuse ephemeral events (kinds 20000-29999) older than this many seconds";
            ephemeral_events_lifetime_seconds: u64 = 300 => "ephemeralEventsLifetimeSeconds", strfry, live,
                "No effect in wok, which delivers ephemeral events live and never stores them (strfry purges its stored ones after this many seconds)";
            max_num_tags: u64 = 2000 => "maxNumTags", strfry, live,
                "Most tags a single event may carry";
            max_tag_val_size: u64 = 1024 => "maxTagValSize", strfry, live,
                "Longest value, in bytes, allowed in a tag whose name is a single letter";
            compression: bool = false => "compression", wok, live,
                "wok only: store new events zstd-compressed with the newest dictionary (made by wok dict train), when that is smaller; readers decompress transparently";
        }

        [retention: RetentionConfig => "retention", "wok only: what the relay deletes by itself to keep the disk from filling (wok prune applies the same rules offline)"] {
            max_db_bytes: u64 = 0 => "maxDbBytes", wok, live,
                "wok only: size budget for live data (LMDB pages in use, not the file size); past it the oldest events of kinds some rule names are pruned first (0 = no budget)";
            rules: String = "" => "rules", wok, live,
                "wok only: named rules, each a block: name { kinds = \"1, 6-7\" maxAgeSeconds = N maxEventsPerPubkey = N archive = \"/dir\" }; maxAgeSeconds prunes by created_at, maxEventsPerPubkey keeps each author's newest N of the rule's kinds, archive appends pruned events to rotating .jsonl.zst files first; replaceable/addressable kinds only when named singly or by a range within their class; empty prunes nothing";
        }

        [relay: RelayConfig => "relay", "The websocket relay server"] {
            bind: String = "127.0.0.1" => "bind", strfry, restart,
                "Address to listen on; 0.0.0.0 accepts connections on every IPv4 interface";
            port: u64 = 7777 => "port", strfry, restart,
                "TCP port serving both websocket and plain HTTP requests";
            nofiles: u64 = 524_288 => "nofiles", strfry, restart,
                "Open-file limit (RLIMIT_NOFILE) to request at startup; 0 leaves the limit untouched";
            real_ip_header: String = "" => "realIpHeader", strfry, live,
                "Lower-case name of a header in which your reverse proxy passes the client address (e.g. x-real-ip); empty uses the socket address";
            max_websocket_payload_size: u64 = 131_072 => "maxWebsocketPayloadSize", strfry, restart,
                "Largest incoming websocket message, in bytes; keep it above events.maxEventSize";
            max_req_filter_size: u64 = 200 => "maxReqFilterSize", strfry, live,
                "Most filters that one REQ or COUNT may contain";
            auto_ping_seconds: u64 = 55 => "autoPingSeconds", strfry, restart,
                "Seconds between websocket pings; keep it below the idle timeout of any proxy in front (0 disables)";
            enable_tcp_keepalive: bool = false => "enableTcpKeepalive", strfry, live,
                "Turn on TCP keep-alive on client sockets, to notice connections a proxy dropped silently";
            query_timeslice_budget_microseconds: u64 = 10_000 => "queryTimesliceBudgetMicroseconds", strfry, live,
                "CPU time, in microseconds, a stored-event scan may use before it yields to other queries";
            max_filter_limit: u64 = 500 => "maxFilterLimit", strfry, live,
                "Cap on the events returned per filter; a larger (or missing) limit is quietly lowered to this";
            max_tags_per_filter: u64 = 3 => "maxTagsPerFilter", strfry, live,
                "Most tag conditions (#e, #p, ...) that one filter may use";
            max_filter_limit_count: u64 = 1_000_000 => "maxFilterLimitCount", strfry, live,
                "Cap on how many events a COUNT request will tally; 0 turns COUNT off";
            max_subs_per_connection: u64 = 200 => "maxSubsPerConnection", strfry, live,
                "Most subscriptions that one connection may keep open at once";
            max_filter_values: u64 = 5_000 => "maxFilterValues", wok, live,
                "wok only: most items in one filter's ids, authors, kinds or tag array (0 = no limit); a follow list is rarely over 2,000";
            max_filter_values_per_connection: u64 = 50_000 => "maxFilterValuesPerConnection", wok, live,
                "wok only: filter values (ids, authors, kinds, tag values; at least 1 per filter) one connection's open subscriptions may hold together (0 = no limit)";
            max_filter_values_total: u64 = 5_000_000 => "maxFilterValuesTotal", wok, live,
                "wok only: the same summed over every connection, bounding live-subscription memory (~150 bytes a value, ~350 an empty filter) (0 = no limit)";
            max_pending_outbound_bytes: u64 = 33_554_432 => "maxPendingOutboundBytes", strfry, live,
                "Outgoing bytes that may pile up for one connection before it is closed as too slow (0 = no limit)";
            max_total_pending_outbound_bytes: u64 = 1_073_741_824 => "maxTotalPendingOutboundBytes", wok, live,
                "wok only: outgoing bytes held for all connections together; past it the connections with the largest backlogs are closed, largest first (0 = no limit)";
            max_messages_in_flight_per_connection: u64 = 256 => "maxMessagesInFlightPerConnection", wok, live,
                "wok only: client messages one connection may have read but not yet answered (an EVENT until its OK, a REQ until EOSE); past it the connection is not read until some finish, so TCP slows the sender (0 = no limit)";
            max_bytes_in_flight_per_connection: u64 = 4_194_304 => "maxBytesInFlightPerConnection", wok, live,
                "wok only: the same counted in message bytes; one message is always let through, however large (0 = no limit)";
            busy_at_messages_in_flight: u64 = 8 => "busyAtMessagesInFlight", wok, live,
                "wok only: a connection with this many client messages in flight at once is busy: its parsing, stored-event scans and socket move to the busy lane's threads until it has been calm for a second, so a flood waits behind everyone else's work, not they behind it (0 = one lane for every connection)";
            busy_lane_nice: u64 = 20 => "busyLaneNice", wok, live,
                "wok only: CPU priority of the busy lane's threads (one per ingester and per reqWorker, and the io thread that owns busy connections' sockets): 20 is SCHED_IDLE, which any other thread preempts at once, or a nice value 0-19, with which a running busy thread keeps its core to the end of its time slice (at 19 polite clients' REQ p99 under a flood about twice 20's, the flood served about 6% faster); leaving 20 or lowering the value needs CAP_SYS_NICE, else a restart";
            batch_scheduling: bool = true => "batchScheduling", wok, live,
                "wok only: the pipeline's threads (ingesters, reqWorkers, reqMonitors, negentropy; not the io threads or the writer) run as SCHED_BATCH, so a thread handed work waits for the running one to block instead of preempting it mid-batch: on 2 cores about 10% less CPU per REQ; false = the process's own policy";

            [auth: AuthConfig => "auth", "NIP-42 client authentication"] {
                enabled: bool = true => "enabled", strfry, live,
                    "Accept NIP-42 AUTH, which clients need in order to publish protected (NIP-70) events";
                service_url: String = "" => "serviceUrl", strfry, live,
                    "Public wss:// URL of this relay; AUTH replies are checked against it, so AUTH cannot succeed until it is set";
                restricted_read_kinds: String = "4, 1059" => "restrictedReadKinds", strfry, live,
                    "Comma-separated event kinds that may only be read (REQ, COUNT, NEG-OPEN) after AUTH; empty restricts nothing";
                restrict_read_to_involved_pubkey: bool = true => "restrictReadToInvolvedPubkey", strfry, live,
                    "For those kinds, the authenticated pubkey must also be the author or be p-tagged";
            }

            [info: InfoConfig => "info", "The NIP-11 relay information document"] {
                // wok's own defaults (strfry's are "strfry default" and "This is a strfry
                // instance."): a relay started without a config file must say what it is.
                name: String = "wok" => "name", strfry, live,
                    "Short relay name (best kept under about 30 characters)";
                description: String = "A Nostr relay running wok." => "description", strfry, live,
                    "Free-form text describing the relay";
                pubkey: String = "" => "pubkey", strfry, live,
                    "Operator's pubkey, npub or 64-character hex, for people who want to get in touch";
                self_pubkey: String = "" => "self", strfry, live,
                    "The relay's own pubkey, npub or 64-character hex";
                contact: String = "" => "contact", strfry, live,
                    "Another way to reach the operator, such as an email address or a web page";
                icon: String = "" => "icon", strfry, live,
                    "URL of a small square image used as the relay's icon";
                banner: String = "" => "banner", strfry, live,
                    "URL of a wide image used as the relay's banner";
                privacy: String = "" => "privacy", strfry, live,
                    "URL of the privacy policy";
                terms: String = "" => "terms", strfry, live,
                    "URL of the terms of service";
                nips: String = "" => "nips", strfry, live,
                    "JSON array that replaces the advertised supported_nips, e.g. \"[1,11]\"; empty advertises what is enabled";
            }

            [write_policy: WritePolicyConfig => "writePolicy", "The write-policy plugin"] {
                plugin: String = "" => "plugin", strfry, live,
                    "Program that rules on every new event, speaking JSON lines on stdin/stdout; empty accepts every valid event";
                timeout_seconds: u64 = 10 => "timeoutSeconds", strfry, live,
                    "Seconds to wait for the plugin's verdict before the plugin is restarted and the event refused";
            }

            [compression: CompressionConfig => "compression", "permessage-deflate websocket compression"] {
                enabled: bool = true => "enabled", strfry, restart,
                    "Offer permessage-deflate to clients: less bandwidth for a little more CPU";
                sliding_window: bool = true => "slidingWindow", strfry, restart,
                    "Keep a compression window per connection: better ratios for more memory";
            }

            [logging: LoggingConfig => "logging", "Diagnostic logging"] {
                dump_in_all: bool = false => "dumpInAll", strfry, live,
                    "Log every message received from clients";
                dump_in_events: bool = false => "dumpInEvents", strfry, live,
                    "Log every EVENT message received";
                dump_in_reqs: bool = false => "dumpInReqs", strfry, live,
                    "Log every REQ, COUNT and CLOSE message received";
                db_scan_perf: bool = false => "dbScanPerf", strfry, live,
                    "Log timing and index details of the initial database scan for each filter";
                invalid_events: bool = true => "invalidEvents", strfry, live,
                    "Log why an invalid event was refused (switch off if it gets too noisy)";
            }

            [num_threads: NumThreadsConfig => "numThreads", "Worker thread counts"] {
                ingester: u64 = 3 => "ingester", strfry, restart,
                    "Threads that parse client messages and verify event ids and signatures";
                req_worker: u64 = 3 => "reqWorker", strfry, restart,
                    "Threads that run the initial stored-event scans for REQ and COUNT";
                req_monitor: u64 = 3 => "reqMonitor", strfry, restart,
                    "Threads that match newly stored events against open subscriptions";
                negentropy: u64 = 2 => "negentropy", strfry, restart,
                    "Threads that serve negentropy (NIP-77) sync sessions";
            }

            [negentropy: NegentropyConfig => "negentropy", "NIP-77 negentropy set reconciliation"] {
                enabled: bool = true => "enabled", strfry, live,
                    "Accept negentropy sync sessions (NEG-OPEN, NEG-MSG, NEG-CLOSE)";
                max_sync_events: u64 = 1_000_000 => "maxSyncEvents", strfry, live,
                    "Most events one sync session may cover; larger sessions are refused";
                idle_timeout_seconds: u64 = 300 => "idleTimeoutSeconds", wok, live,
                    "wok only: a sync session unused this many seconds is freed (its memory with it) and its client gets NEG-ERR closed: idle timeout; 0 keeps sessions until the connection closes, as strfry does";
            }

            [metrics: MetricsConfig => "metrics", "wok only: Prometheus metrics at GET /metrics on the relay port"] {
                enabled: bool = true => "enabled", wok, live,
                    "wok only: serve /metrics (404 when off)";
                bearer_token: String = "" => "bearerToken", wok, live,
                    "wok only: when set, /metrics answers 401 unless the request has Authorization: Bearer <token>; empty leaves it public (then block /metrics at your proxy)";
            }

            [pow: PowConfig => "pow", "wok only: NIP-13 proof of work demanded of new events"] {
                min_difficulty: u64 = 0 => "minDifficulty", wok, live,
                    "wok only: leading zero bits an event id must have (NIP-13), checked before the signature; 0 asks for none. Also shown in NIP-11 as limitation.min_pow_difficulty";
                kind_difficulty: String = "" => "kindDifficulty", wok, live,
                    "wok only: per-kind overrides of minDifficulty as kind:bits pairs, e.g. \"1:20, 7:0\" (kind 1 needs 20 bits, kind 7 none); empty applies minDifficulty to every kind";
            }

            [management: ManagementConfig => "management", "wok only: access control and the NIP-86 relay management API"] {
                admin_pubkeys: String = "" => "adminPubkeys", wok, live,
                    "wok only: comma-separated hex pubkeys or npubs allowed to use NIP-86 management (HTTP POST, NIP-98 auth); empty turns the API off (every call is 403)";
                write_access: String = "public" => "writeAccess", wok, live,
                    "wok only: who may publish: public (anyone not banned), allowlist (admins and pubkeys added with allowpubkey), or wot (admins, allowlisted pubkeys and everyone the admins follow in their kind-3 lists)";
                restrict_reads: bool = false => "restrictReads", wok, live,
                    "wok only: with writeAccess allowlist or wot, REQ, COUNT and NEG-OPEN also need NIP-42 AUTH as a pubkey that may write";
                max_body_bytes: u64 = 65_536 => "maxBodyBytes", wok, live,
                    "wok only: largest NIP-86 request body; a larger one is answered 413 unread";
            }

            [limits: LimitsConfig => "limits", "wok only: rate limits and connection caps per IP (an IPv4 address or an IPv6 /64), per authenticated pubkey and per connection; a rate of 0 turns that limit off"] {
                enabled: bool = true => "enabled", wok, live,
                    "wok only: apply the limits below; false switches every one off";
                ipv6_prefix_length: u64 = 64 => "ipv6PrefixLength", wok, live,
                    "wok only: IPv6 clients sharing this many leading address bits count as one IP (a /64 is what one household or server usually gets)";
                exempt_loopback: bool = false => "exemptLoopback", wok, live,
                    "wok only: no limits for 127.0.0.0/8 and ::1; off, since a relay behind a proxy on the same host sees every client as loopback unless realIpHeader is set";
                exempt_cidrs: String = "" => "exemptCidrs", wok, live,
                    "wok only: comma-separated addresses or CIDR blocks (10.0.0.0/8, 2001:db8::/32) that no limit applies to; checked when a connection opens";
                exempt_pubkeys: String = "" => "exemptPubkeys", wok, live,
                    "wok only: comma-separated hex pubkeys whose connections no limit applies to once they AUTH (NIP-42)";
                events_per_second_per_ip: u64 = 1_000 => "eventsPerSecondPerIp", wok, live,
                    "wok only: EVENTs one IP may send per second; a person publishes a few a minute, and wok upload or sync (50 in flight) over a 50 ms link pushes about 1,000/s";
                events_burst_per_ip: u64 = 10_000 => "eventsBurstPerIp", wok, live,
                    "wok only: EVENTs one IP may send at once above that rate: a 10,000-event upload or sync batch passes at full speed";
                events_per_second_per_connection: u64 = 0 => "eventsPerSecondPerConnection", wok, live,
                    "wok only: the same per connection (0 = off: the IP's limit covers it; set it when many users share one IP, as behind carrier NAT)";
                events_burst_per_connection: u64 = 0 => "eventsBurstPerConnection", wok, live,
                    "wok only: burst for eventsPerSecondPerConnection";
                events_per_second_per_pubkey: u64 = 1_000 => "eventsPerSecondPerPubkey", wok, live,
                    "wok only: EVENTs per second from connections authenticated (NIP-42) as one pubkey, whatever their IPs; sized like the IP's";
                events_burst_per_pubkey: u64 = 10_000 => "eventsBurstPerPubkey", wok, live,
                    "wok only: burst for eventsPerSecondPerPubkey";
                reqs_per_second_per_ip: u64 = 100 => "reqsPerSecondPerIp", wok, live,
                    "wok only: REQs and COUNTs one IP may send per second; a feed app opens about 10 subscriptions and then a few REQs a second as the user scrolls, wok sync's id batches a few dozen a second";
                reqs_burst_per_ip: u64 = 1_000 => "reqsBurstPerIp", wok, live,
                    "wok only: REQs and COUNTs at once above that rate: an app starting up with many subscriptions, several apps behind one address, or a benchmark's client awaiting each REQ for a few seconds";
                reqs_per_second_per_connection: u64 = 0 => "reqsPerSecondPerConnection", wok, live,
                    "wok only: the same per connection (0 = off: the IP's limit covers it)";
                reqs_burst_per_connection: u64 = 0 => "reqsBurstPerConnection", wok, live,
                    "wok only: burst for reqsPerSecondPerConnection";
                reqs_per_second_per_pubkey: u64 = 100 => "reqsPerSecondPerPubkey", wok, live,
                    "wok only: REQs and COUNTs per second from connections authenticated as one pubkey; sized like the IP's";
                reqs_burst_per_pubkey: u64 = 1_000 => "reqsBurstPerPubkey", wok, live,
                    "wok only: burst for reqsPerSecondPerPubkey";
                neg_opens_per_second_per_ip: u64 = 5 => "negOpensPerSecondPerIp", wok, live,
                    "wok only: NEG-OPENs (NIP-77 sync sessions) one IP may start per second; wok sync and a router link start one per sync";
                neg_opens_burst_per_ip: u64 = 50 => "negOpensBurstPerIp", wok, live,
                    "wok only: NEG-OPENs at once above that rate (a router syncing many filters on start)";
                neg_opens_per_second_per_connection: u64 = 0 => "negOpensPerSecondPerConnection", wok, live,
                    "wok only: the same per connection (0 = off)";
                neg_opens_burst_per_connection: u64 = 0 => "negOpensBurstPerConnection", wok, live,
                    "wok only: burst for negOpensPerSecondPerConnection";
                neg_opens_per_second_per_pubkey: u64 = 5 => "negOpensPerSecondPerPubkey", wok, live,
                    "wok only: NEG-OPENs per second from connections authenticated as one pubkey";
                neg_opens_burst_per_pubkey: u64 = 50 => "negOpensBurstPerPubkey", wok, live,
                    "wok only: burst for negOpensPerSecondPerPubkey";
                max_subscriptions_per_ip: u64 = 1_000 => "maxSubscriptionsPerIp", wok, live,
                    "wok only: subscriptions open at once across one IP's connections (maxSubsPerConnection bounds one connection); five apps with 200 each";
                bytes_per_second_per_ip: u64 = 4_194_304 => "bytesPerSecondPerIp", wok, live,
                    "wok only: WebSocket bytes read from one IP per second (its reading pauses past it, so TCP slows the sender; nothing is refused); 1,000 events/s of ~1 KB is a quarter of it";
                bytes_burst_per_ip: u64 = 33_554_432 => "bytesBurstPerIp", wok, live,
                    "wok only: bytes read at once above that rate (a burst of large events)";
                bytes_per_second_per_connection: u64 = 0 => "bytesPerSecondPerConnection", wok, live,
                    "wok only: the same per connection (0 = off)";
                bytes_burst_per_connection: u64 = 0 => "bytesBurstPerConnection", wok, live,
                    "wok only: burst for bytesPerSecondPerConnection";
                max_connections_per_ip: u64 = 200 => "maxConnectionsPerIp", wok, live,
                    "wok only: WebSocket connections one IP may hold at once (an HTTP 429 refuses the upgrade past it); clients open one per relay, so this is many people behind one NAT";
                new_connections_per_second_per_ip: u64 = 10 => "newConnectionsPerSecondPerIp", wok, live,
                    "wok only: new WebSocket connections per second from one IP (429 past it); clients reconnect with backoff, a few at a time";
                new_connections_burst_per_ip: u64 = 100 => "newConnectionsBurstPerIp", wok, live,
                    "wok only: new connections at once above that rate (a network change reconnects every app)";
                violations_before_disconnect: u64 = 100 => "violationsBeforeDisconnect", wok, live,
                    "wok only: refusals one IP may earn within violationWindowSeconds before the offending connection is closed and the IP refused for a cooldown (0 never disconnects); a client that reads its rate-limited answers and backs off earns a handful";
                violation_window_seconds: u64 = 10 => "violationWindowSeconds", wok, live,
                    "wok only: the window over which an IP's refusals are counted";
                cooldown_seconds: u64 = 30 => "cooldownSeconds", wok, live,
                    "wok only: how long a disconnected IP's new connections get HTTP 429; doubled at each repeat, up to maxCooldownSeconds";
                max_cooldown_seconds: u64 = 3_600 => "maxCooldownSeconds", wok, live,
                    "wok only: the longest cooldown; an IP that stays good this long after one ends starts again from cooldownSeconds";
            }

            [filter_validation: FilterValidationConfig => "filterValidation", "Optional strict checks on REQ and COUNT filters"] {
                enabled: bool = false => "enabled", strfry, live,
                    "Apply the checks below to every REQ and COUNT";
                max_filters_per_req: u64 = 3 => "maxFiltersPerReq", strfry, live,
                    "Most filters allowed in one request";
                min_filters_per_req: u64 = 1 => "minFiltersPerReq", strfry, live,
                    "Fewest filters allowed in one request";
                max_kinds_per_filter: u64 = 3 => "maxKindsPerFilter", strfry, live,
                    "Most kinds that one filter may list";
                allowed_kinds: String = "" => "allowedKinds", strfry, live,
                    "Comma-separated kinds that filters may ask for; empty allows every kind";
                require_author_or_tag: bool = false => "requireAuthorOrTag", strfry, live,
                    "Every filter must name exactly one author, or exactly one #p, or exactly one #e";
            }
        }

        [search: SearchConfig => "search", "wok only: NIP-50 full-text search (the index lives in the database, written with each event)"] {
            enabled: bool = false => "enabled", wok, live,
                "wok only: index new events of these kinds and answer REQ and COUNT filters with a search field (NIP-50, listed in NIP-11); off by default because indexing costs about 13% of the relay's ingest rate and a quarter more disk for the kinds it covers, and off refuses search filters with CLOSED; after turning it on, wok search build indexes stored events";
            kinds: String = "0, 1, 11, 1111, 9802, 30023, 30024" => "kinds", wok, live,
                "wok only: kinds of new events added to the search index, comma-separated, a-b for ranges; empty indexes nothing (wok search build indexes stored events)";
        }
    }
}
